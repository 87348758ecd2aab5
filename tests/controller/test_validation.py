from __future__ import annotations

import pytest

from controller.errors import InvalidSpecError
from controller.validation import validate_specs
from moorage.v1 import types_pb2


def spec(name: str = "web", image: str = "busybox", **extra: object) -> types_pb2.ServiceSpec:
    return types_pb2.ServiceSpec(name=name, image=image, **extra)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["web", "a", "web-1", "1web", "a" * 63])
def test_valid_names(name: str) -> None:
    validate_specs([spec(name)])


@pytest.mark.parametrize(
    ("specs", "service", "field"),
    [
        pytest.param([spec("Web")], "Web", "name", id="uppercase"),
        pytest.param([spec("web_1")], "web_1", "name", id="underscore"),
        pytest.param([spec("-web")], "-web", "name", id="leading-dash"),
        pytest.param([spec("web-")], "web-", "name", id="trailing-dash"),
        pytest.param([spec("a" * 64)], "a" * 64, "name", id="too-long"),
        pytest.param([spec("")], "", "name", id="empty-name"),
        pytest.param([spec(image=" ")], "web", "image", id="blank-image"),
        pytest.param([spec(stop_grace_period=-1)], "web", "stop_grace_period", id="negative-grace"),
        pytest.param([spec(env={"": "x"})], "web", "env", id="empty-env-name"),
        pytest.param([spec(), spec("db"), spec()], "web", "name", id="duplicate"),
    ],
)
def test_invalid_specs_name_service_and_field(specs: list[types_pb2.ServiceSpec], service: str, field: str) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        validate_specs(specs)
    assert (caught.value.service, caught.value.field) == (service, field)
    assert field in str(caught.value)

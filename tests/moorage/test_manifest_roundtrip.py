"""Property: any service the model accepts survives to_spec → wire → from_spec unchanged."""

from __future__ import annotations

from hypothesis import given, reject
from hypothesis import strategies as st
from pydantic import ValidationError

from moorage.manifest import ServiceManifest
from moorage.v1 import types_pb2

# Mostly values the model should accept, plus any unicode a YAML file can carry
# (no lone surrogates, but NUL, spaces and empty strings on purpose): the property
# is about whatever the model accepts, and it must reject what it cannot carry.
texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
words = st.from_regex(r"[A-Za-z0-9_./:@-]{1,20}", fullmatch=True)
names = st.one_of(st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True), texts)
keys = st.one_of(words, texts)
scalars = st.one_of(texts, words, st.integers(), st.floats(allow_nan=False, allow_infinity=False))
argv = st.one_of(st.lists(scalars, max_size=4), texts)
env = st.one_of(
    st.dictionaries(keys, scalars, max_size=4),
    st.lists(st.builds(lambda k, v: f"{k}={v}", words, texts), max_size=4, unique=True),
)
durations = st.one_of(
    st.floats(min_value=0, exclude_min=True, allow_infinity=False),
    st.integers(min_value=1),
    st.builds(lambda n, unit: f"{n}{unit}", st.integers(0, 10**6), st.sampled_from(["ms", "s", "m", "h", "m30s"])),
)

documents = st.fixed_dictionaries(
    {"name": names, "image": st.one_of(words, texts)},
    optional={
        "entrypoint": argv,
        "command": argv,
        "env": env,
        "replicas": st.integers(min_value=-1, max_value=2**32),
        "stop_grace_period": durations,
        "labels": st.dictionaries(keys, scalars, max_size=4),
    },
)


@given(documents)
def test_accepted_manifests_round_trip_through_the_spec(document: dict[str, object]) -> None:
    try:
        service = ServiceManifest.model_validate(document)
    except ValidationError:
        reject()
    wire = types_pb2.ServiceSpec.FromString(service.to_spec().SerializeToString())
    assert ServiceManifest.from_spec(wire) == service
    assert wire == service.to_spec()

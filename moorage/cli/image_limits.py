"""The image store's limits as an option, shared by `moor agent` and `moor image import/load/pull/build`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from agent.runtime.images.spec import Limits

ImageLimitOption = Annotated[
    list[str] | None,
    typer.Option(
        "--image-limit", envvar="MOOR_IMAGE_LIMITS", metavar="NAME=N",
        help="Set a bound on the images this host accepts, e.g. layer_bytes=32GiB or layer_entries=2000000"
             " (layer_bytes, layer_entries, path_bytes, path_depth, ratio, ratio_floor, blob, manifest, config;"
             " sizes may end in KiB/MiB/GiB/TiB); repeatable. Defaults: README.md, Image limits.",
    ),
]


def image_limits(items: list[str] | None) -> Limits:
    """The store's limits: the defaults with ``items`` applied; a bad item is a usage error naming it."""
    from agent.runtime.images.spec import Limits

    try:
        return Limits.parse(items or [])
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--image-limit") from e

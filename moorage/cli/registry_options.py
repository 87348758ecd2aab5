"""Registry options shared by `moor agent` and `moor image pull/push/build`."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from agent.runtime.images.registry import RegistrySettings

RegistryOption = Annotated[
    str | None,
    typer.Option("--registry", envvar="MOOR_REGISTRY", metavar="HOST:PORT",
                 help="Registry for image names without one; spoken to over plain HTTP (a development setting)."),
]
InsecureOption = Annotated[
    list[str] | None,
    typer.Option("--insecure-registry", envvar="MOOR_INSECURE_REGISTRY", metavar="HOST:PORT",
                 help="A registry (or a CIDR of them) spoken to over plain HTTP; repeatable."),
]


def registry_settings(registry: str | None, insecure: list[str] | None) -> RegistrySettings:
    """Settings from the options; the default registry counts as insecure (plain HTTP).
    Credentials, if any, come from $MOOR_REGISTRY_USERNAME and $MOOR_REGISTRY_PASSWORD."""
    from agent.runtime.images.registry import RegistrySettings

    hosts = {h for item in insecure or [] for h in item.replace(",", " ").split()}
    return RegistrySettings(
        default=registry,
        insecure=frozenset(hosts | ({registry} if registry else set())),
        username=os.environ.get("MOOR_REGISTRY_USERNAME"),
        password=os.environ.get("MOOR_REGISTRY_PASSWORD"),
    )

"""The `moor` command: the Typer app, its global options and its sub-commands.

Shell completion comes from Typer: ``moor --install-completion`` (bash, zsh, fish)
or ``moor --show-completion bash`` to see the script.
"""

import json
from pathlib import Path
from typing import Annotated

import typer

from moorage import __version__
from moorage.cli import apply, cluster, daemons, describe, events, exec, get, logs, nodes, reporting, services
from moorage.cli.common import ControllerOption
from moorage.cli.config import connect
from moorage.cli.lazy import lazy_group

# Plain help and usage errors, as kubectl prints them: Typer's Rich help loads rich.markdown
# and pygments, ~100 ms on every `--help`. Tables and progress still use Rich.
app = typer.Typer(
    name="moor",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _global_options(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks instead of one-line errors.")] = False,
) -> None:
    """Moorage: run services on a cluster of hosts.

    Exit codes: 0 success, 1 failure, 2 invalid input, 3 not found.

    Example: moor apply -f examples/hello.yaml --wait && moor get tasks
    """
    reporting.debug.set(debug)


@reporting.reporting
def version(
    client_only: Annotated[bool, typer.Option("--client", help="Only the client's version; do not connect.")] = False,
    controller: ControllerOption = None,
) -> None:
    """Print the version of moor and of the controller it talks to.

    Example: moor version
    """
    typer.echo(f"client: moor {__version__}")
    if client_only:
        return
    from moorage.client import ClientError

    with connect(controller) as client:
        try:
            info = client.version()
        except ClientError:
            typer.echo("server: unknown")
            raise
    role = "leader" if info.leader else "follower"
    where = f"controller {info.controller_id or '?'} at {client.address}, {role}"
    typer.echo(f"server: moor {info.version} (api {info.api}, {where})")


@reporting.reporting
def schema(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")] = None,
) -> None:
    """Print the JSON Schema of a service manifest, for editors to validate and complete.

    Example: moor schema -o moorage.schema.json
    """
    from moorage.manifest import json_schema

    text = json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output}")


app.command()(apply.apply)
app.command()(apply.diff)
app.add_typer(get.app, name="get")
app.add_typer(describe.app, name="describe")
app.command()(logs.logs)
app.command("exec", context_settings={"allow_interspersed_args": False})(exec.exec_)
app.command()(services.delete)
app.command()(services.scale)
app.add_typer(nodes.app, name="node")
app.add_typer(cluster.app, name="cluster")
app.command()(events.events)
app.command()(version)
app.command()(schema)
IMAGE_HELP = "Manage the images of this host.\n\nExample: moor image ls --state-dir /var/lib/moorage"
CONTAINER_HELP = "Act on one container of this host directly.\n\nExample: moor container commit 3f2a9c1b7d4e web:hotfix"
# Host-local commands (agent/cli.py), loaded only when `moor image` or `moor container` runs.
app.add_typer(
    typer.Typer(cls=lazy_group("agent.cli:image_app"), help=IMAGE_HELP, no_args_is_help=True), name="image"
)
app.add_typer(
    typer.Typer(cls=lazy_group("agent.cli:container_app"), help=CONTAINER_HELP, no_args_is_help=True),
    name="container",
)
app.command()(daemons.controller)
app.command()(daemons.agent)


def main() -> None:
    """Entry point of the `moor` console script."""
    app()

"""`moor image ...` and `moor container commit`: the image store of this host, used directly.

These commands work on a host's state directory (``--state-dir``), as the agent's store is
a directory and not an API: run them on the host, as root. Registry commands take the
same registry settings as the agent (see moorage/cli/registry_options.py).
"""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from moorage.cli.common import EXIT_INVALID, EXIT_NOT_FOUND, CommandError, stderr_console, stdout_console
from moorage.cli.daemons import DEFAULT_STATE_DIR, StateDirOption
from moorage.cli.image_limits import ImageLimitOption, image_limits
from moorage.cli.registry_options import InsecureOption, RegistryOption, registry_settings
from moorage.cli.reporting import reporting

if TYPE_CHECKING:
    from rich.progress import Progress

    from agent.runtime.containers.containers import Runtime
    from agent.runtime.images.store import Image, ImageStore

# The commands of `moor image` and `moor container`; their group help is moorage/cli/app.py's.
image_app = typer.Typer(rich_markup_mode=None)
container_app = typer.Typer(rich_markup_mode=None)


def _store(state_dir: Path, limits: list[str] | None = None) -> "ImageStore":
    from agent.runtime.images.store import ImageStore

    return ImageStore(state_dir / "images", image_limits(limits))


def _runtime(state_dir: Path, store: "ImageStore") -> "Runtime":
    from agent.runtime.containers.containers import Runtime

    return Runtime(state_dir, store)


@contextmanager
def _image_errors() -> Iterator[None]:
    """Exit codes for the store's errors: 3 for not found, 2 for bad input, 1 for the rest."""
    from agent.runtime.errors import BuildError, ContainerNotFound, ImageNotFound, InvalidImage

    try:
        yield
    except (ImageNotFound, ContainerNotFound) as e:
        raise CommandError(str(e), EXIT_NOT_FOUND) from e
    except (InvalidImage, BuildError) as e:
        raise CommandError(str(e), EXIT_INVALID) from e


class _BlobProgress:
    """Pull and push progress, one Rich bar per blob, on stderr."""

    def __init__(self, progress: "Progress", verb: str) -> None:
        self.progress = progress
        self.verb = verb
        self.tasks: dict[str, Any] = {}

    def start(self, digest: str, total: int) -> None:
        self.tasks[digest] = self.progress.add_task(f"{self.verb} {digest[7:19]}", total=total)

    def advance(self, digest: str, amount: int) -> None:
        self.progress.advance(self.tasks[digest], amount)

    def done(self, digest: str, skipped: bool) -> None:
        if skipped:
            self.progress.console.print(f"{digest[7:19]}: already present")


@contextmanager
def _progress(verb: str) -> Iterator[_BlobProgress]:
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=stderr_console(), transient=False) as progress:
        yield _BlobProgress(progress, verb)


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB"):
        if value < 1000:
            return f"{value:.0f} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def _echo_image(image: "Image") -> None:
    typer.echo(f"{image.reference} {image.digest}")


# --- store ------------------------------------------------------------------------------------


@image_app.command("import")
@reporting
def image_import(
    source: Annotated[Path, typer.Argument(help="Root filesystem directory to import.")],
    name: Annotated[str, typer.Argument(help="Image reference NAME[:TAG].")],
    state_dir: StateDirOption = DEFAULT_STATE_DIR,
    image_limit: ImageLimitOption = None,
) -> None:
    """Import a root filesystem directory (or a .tar / .tar.gz of one) as an image on this host.

    Example: moor image import ./rootfs busybox:latest
    """
    with _image_errors():
        _echo_image(_store(state_dir, image_limit).import_rootfs(source, name))


@image_app.command("ls")
@reporting
def image_ls(state_dir: StateDirOption = DEFAULT_STATE_DIR) -> None:
    """List the images of this host.

    Example: moor image ls
    """
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("REFERENCE", "DIGEST", "LAYERS", "SIZE"):
        table.add_column(column)
    for image in sorted(_store(state_dir).list(), key=lambda i: i.reference):
        table.add_row(image.reference, image.digest[:19], str(len(image.layers)), _size(image.size))
    stdout_console().print(table)


@image_app.command("inspect")
@reporting
def image_inspect(
    reference: Annotated[str, typer.Argument(help="NAME[:TAG], NAME@DIGEST or a manifest digest.")],
    state_dir: StateDirOption = DEFAULT_STATE_DIR,
) -> None:
    """Show an image as JSON: digests, layers with sizes, and its config.

    Example: moor image inspect busybox:latest
    """
    with _image_errors():
        store = _store(state_dir)
        image = store.get(reference)
    out = {
        "reference": image.reference,
        "references": store.references(image.digest),
        "digest": image.digest,
        "config_digest": image.config_digest,
        "size": image.size,
        "layers": [
            {"digest": layer.digest, "diff_id": layer.diff_id, "size": layer.size, "media_type": layer.media_type}
            for layer in image.layers
        ],
        "config": asdict(image.config),
        "history": image.config_json.get("history", []),
    }
    typer.echo(json.dumps(out, indent=2, default=str))


@image_app.command("tag")
@reporting
def image_tag(
    source: Annotated[str, typer.Argument(help="An image of this host.")],
    target: Annotated[str, typer.Argument(help="The new NAME[:TAG].")],
    state_dir: StateDirOption = DEFAULT_STATE_DIR,
) -> None:
    """Give an image another name.

    Example: moor image tag app:build 10.0.0.5:5000/app:v2
    """
    with _image_errors():
        _echo_image(_store(state_dir).tag(source, target))


@image_app.command("rm")
@reporting
def image_rm(
    references: Annotated[list[str], typer.Argument(help="Images to remove (a digest removes every tag of it).")],
    force: Annotated[bool, typer.Option("--force", "-f", help="Untag even if a container uses the image.")] = False,
    state_dir: StateDirOption = DEFAULT_STATE_DIR,
) -> None:
    """Remove image references; layers go once no image or container uses them.

    Example: moor image rm app:v1
    """
    store = _store(state_dir)
    usage = _runtime(state_dir, store).image_usage()
    with _image_errors():
        for reference in references:
            for name in store.remove(reference, usage, force):
                typer.echo(f"untagged {name}")


@image_app.command("prune")
@reporting
def image_prune(
    all_unused: Annotated[
        bool, typer.Option("--all", "-a", help="Also every image no container uses, and the build cache.")
    ] = False,
    state_dir: StateDirOption = DEFAULT_STATE_DIR,
) -> None:
    """Delete blobs and layers nothing references (with --all: unused images too).

    Example: moor image prune --all
    """
    store = _store(state_dir)
    removed, swept = store.prune(_runtime(state_dir, store).image_usage(), all_unused)
    for name in removed:
        typer.echo(f"untagged {name}")
    typer.echo(f"deleted {swept.blobs} blobs and {swept.layers} layers, {_size(swept.bytes)} of blobs freed")


# --- load and save ----------------------------------------------------------------------------


@image_app.command("load")
@reporting
def image_load(
    source: Annotated[Path, typer.Option("--input", "-i", help="OCI layout directory or tarball, or docker-save tarball.")],
    tag: Annotated[str | None, typer.Option("--tag", "-t", help="Name for the (single) image loaded.")] = None,
    state_dir: StateDirOption = DEFAULT_STATE_DIR,
    image_limit: ImageLimitOption = None,
) -> None:
    """Load images from an OCI image layout or a `docker save` tarball.

    Example: moor image load -i app.tar
    """
    from agent.runtime.images import archive

    with _image_errors():
        for image in archive.load(_store(state_dir, image_limit), source, tag):
            _echo_image(image)


@image_app.command("save")
@reporting
def image_save(
    references: Annotated[list[str], typer.Argument(help="Images to save.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory (oci) or tarball (docker) to write.")],
    fmt: Annotated[str, typer.Option("--format", help="oci: an OCI image layout directory; docker: a docker-save tarball.")] = "oci",
    state_dir: StateDirOption = DEFAULT_STATE_DIR,
) -> None:
    """Save images as an OCI image layout or a `docker save` tarball.

    Example: moor image save app:v1 -o app-layout
    """
    from agent.runtime.images import archive

    savers = {"oci": archive.save_oci, "docker": archive.save_docker}
    if fmt not in savers:
        raise typer.BadParameter(f"{fmt!r}: want oci or docker", param_hint="--format")
    with _image_errors():
        for image in savers[fmt](_store(state_dir), references, output):
            _echo_image(image)


# --- registry ---------------------------------------------------------------------------------


@image_app.command("pull")
@reporting
def image_pull(
    reference: Annotated[str, typer.Argument(help="[HOST:PORT/]NAME[:TAG|@DIGEST].")],
    registry: RegistryOption = None,
    insecure: InsecureOption = None,
    state_dir: StateDirOption = DEFAULT_STATE_DIR,
    image_limit: ImageLimitOption = None,
) -> None:
    """Pull an image from a registry; layers already here are not downloaded again.

    Example: moor image pull 10.0.0.5:5000/app:v2 --insecure-registry 10.0.0.5:5000
    """
    from agent.runtime.images.registry import RegistryClient

    with _image_errors(), _progress("pull") as progress:
        image = RegistryClient(registry_settings(registry, insecure)).pull(_store(state_dir, image_limit), reference,
                                                                           progress=progress)
    _echo_image(image)


@image_app.command("push")
@reporting
def image_push(
    reference: Annotated[str, typer.Argument(help="An image of this host.")],
    target: Annotated[str | None, typer.Argument(help="Where to push it (default: its own name).")] = None,
    registry: RegistryOption = None,
    insecure: InsecureOption = None,
    state_dir: StateDirOption = DEFAULT_STATE_DIR,
) -> None:
    """Push an image to a registry; layers the registry has are not uploaded again.

    Example: moor image push app:v2 10.0.0.5:5000/app:v2
    """
    from agent.runtime.images.registry import RegistryClient

    with _image_errors(), _progress("push") as progress:
        digest = RegistryClient(registry_settings(registry, insecure)).push(_store(state_dir), reference, target,
                                                                            progress)
    typer.echo(f"{target or reference} {digest}")


# --- build and commit -------------------------------------------------------------------------


class _StepReporter:
    def step(self, number: int, total: int, instruction: str, cached: bool) -> None:
        typer.echo(f"step {number}/{total}: {instruction}" + (" (cached)" if cached else ""), err=True)

    def output(self, line: str) -> None:
        typer.echo(f"  | {line}", err=True)


@image_app.command("build")
@reporting
def image_build(
    context: Annotated[Path, typer.Argument(help="The build context directory.")],
    tag: Annotated[str | None, typer.Option("--tag", "-t", help="Name the result NAME[:TAG].")] = None,
    file: Annotated[Path | None, typer.Option("--file", "-f", help="The Containerfile (default: CONTEXT/Containerfile, else Dockerfile).")] = None,
    build_arg: Annotated[list[str] | None, typer.Option("--build-arg", metavar="KEY=VALUE", help="Value of an ARG; repeatable.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Run every step, ignoring the step cache.")] = False,
    registry: RegistryOption = None,
    insecure: InsecureOption = None,
    state_dir: StateDirOption = DEFAULT_STATE_DIR,
    image_limit: ImageLimitOption = None,
) -> None:
    """Build an image from a Containerfile, here, into this host's store.

    Example: moor image build -f Containerfile . -t app:v2 --build-arg VERSION=2
    """
    from agent.runtime.images.builds import Builder
    from agent.runtime.images.registry import RegistryClient

    args = {}
    for item in build_arg or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--build-arg")
        args[key] = value
    if file is None:
        file = next((context / n for n in ("Containerfile", "Dockerfile") if (context / n).is_file()),
                    context / "Containerfile")
    store = _store(state_dir, image_limit)
    client = RegistryClient(registry_settings(registry, insecure))
    builder = Builder(store, lambda: _runtime(state_dir, store), _StepReporter(),
                      pull=lambda ref: client.pull(store, ref))
    with _image_errors():
        image = builder.build(context, file, tag, args, no_cache)
    _echo_image(image)


@container_app.command("commit")
@reporting
def container_commit(
    container: Annotated[str, typer.Argument(help="The container's id.")],
    name: Annotated[str, typer.Argument(help="NAME[:TAG] of the new image.")],
    message: Annotated[str, typer.Option("--message", "-m", help="A note kept in the image's history.")] = "",
    state_dir: StateDirOption = DEFAULT_STATE_DIR,
) -> None:
    """Make an image of a container's read/write layer (an emergency fix).

    Example: moor container commit web.1.abc web:hotfix
    """
    from agent.runtime.images.commit import commit

    typer.echo(
        "warning: commit bypasses the declarative flow: the change is in no manifest or Containerfile;"
        " fold it into the build and redeploy",
        err=True,
    )
    store = _store(state_dir)
    with _image_errors():
        image = commit(store, _runtime(state_dir, store), container, name, message)
    _echo_image(image)

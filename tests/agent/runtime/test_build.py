"""Builds and whiteouts on the real runtime: RUN in containers, COPY from the context, the step cache."""

from __future__ import annotations

import io
import os
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest

from agent.runtime import ContainerSpec, ImageConfig, ImageStore, Runtime
from agent.runtime.images.builds import Builder
from agent.runtime.images.builds.builder import IMPLICIT_DIR_MTIME
from agent.runtime.images.commit import commit
from agent.runtime.errors import BuildError
from agent.runtime.images.store import Healthcheck, Image
from tests.agent.runtime.support import MARKER, HostFiles, lines, sh


class Recorder:
    def __init__(self) -> None:
        self.steps: list[tuple[str, bool]] = []
        self.lines: list[str] = []

    def step(self, number: int, total: int, instruction: str, cached: bool) -> None:
        self.steps.append((instruction.split()[0], cached))

    def output(self, line: str) -> None:
        self.lines.append(line)


@pytest.fixture
def images(tmp_path: Path, busybox_rootfs: Path) -> ImageStore:
    """Builds add images: each test gets a store of its own (conftest's ``runtime`` runs on it)."""
    store = ImageStore(tmp_path / "moorage-images")
    store.import_rootfs(busybox_rootfs, "busybox", ImageConfig(cmd=("sh",)))
    return store


def build(images: ImageStore, runtime: Runtime, context: Path, text: str, tag: str = "built:1",
          args: dict[str, str] | None = None, no_cache: bool = False) -> tuple[Recorder, Image]:
    (context / "Containerfile").write_text(text)
    recorder = Recorder()
    image = Builder(images, lambda: runtime, recorder).build(context, context / "Containerfile", tag, args or {},
                                                            no_cache)
    return recorder, image


CONTAINERFILE = """\
FROM busybox
ARG GREETING=hello
ENV APP=/srv/app PATH=/bin
WORKDIR /etc
RUN echo "$GREETING from run" && rm /etc/moorage-marker && mkdir -p /srv/gone && echo x > /srv/gone/f
RUN rm -rf /srv/gone
COPY files/ /srv/app/
COPY one.txt /srv/single.txt
USER 1000:1000
EXPOSE 8080 53/udp
VOLUME /data
LABEL org.example.team="core infra"
HEALTHCHECK --interval=5s --retries=3 CMD ["true"]
STOPSIGNAL SIGINT
ENTRYPOINT ["cat"]
CMD ["/srv/single.txt"]
"""


def make_context(tmp_path: Path) -> Path:
    context = tmp_path / "ctx"
    (context / "files" / "sub").mkdir(parents=True)
    (context / "files" / "a.txt").write_text("a\n")
    (context / "files" / "sub" / "b.txt").write_text("b\n")
    (context / "files" / "debug.log").write_text("noise\n")
    (context / "one.txt").write_text("single\n")
    (context / ".dockerignore").write_text("**/*.log\n")
    return context


def test_a_build_runs_copies_configures_and_caches(tmp_path: Path, images: ImageStore, runtime: Runtime) -> None:
    context = make_context(tmp_path)
    first, image = build(images, runtime, context, CONTAINERFILE, args={"GREETING": "hi"})
    assert "hi from run" in first.lines
    assert not any(cached for _, cached in first.steps)
    config = images.get("built:1").config
    assert config.entrypoint == ("cat",) and config.cmd == ("/srv/single.txt",)
    assert config.user == "1000:1000" and config.working_dir == "/etc" and "APP=/srv/app" in config.env
    assert config.exposed_ports == ("53/udp", "8080/tcp") and config.volumes == ("/data",)
    assert config.labels == {"org.example.team": "core infra"} and config.stop_signal == "SIGINT"
    assert config.healthcheck == Healthcheck(test=("CMD", "true"), interval=5_000_000_000, retries=3)
    layers = images.get("built:1").layers
    assert len(layers) == 1 + 4  # busybox + RUN + RUN + COPY + COPY

    # the image's files, through a real overlay mount: whiteouts of both RUNs hide what they removed
    runtime.run("check", _spec("built:1", "ls /etc/moorage-marker /srv/gone 2>&1; find /srv | sort; cat /srv/app/sub/b.txt"))
    runtime.wait("check", timeout=30)
    out = lines(runtime, "check")
    assert any("moorage-marker" in line and "No such file" in line for line in out)
    assert any("/srv/gone" in line and "No such file" in line for line in out)
    assert "/srv/app/a.txt" in out and "/srv/app/sub/b.txt" in out and "/srv/single.txt" in out
    assert "/srv/app/debug.log" not in out  # .dockerignore
    assert out[-1] == "b"

    second, again = build(images, runtime, context, CONTAINERFILE, args={"GREETING": "hi"})
    assert all(cached for name, cached in second.steps if name in ("RUN", "COPY")) and second.lines == []
    assert again.digest == image.digest
    (context / "one.txt").write_text("changed\n")
    third, changed = build(images, runtime, context, CONTAINERFILE, args={"GREETING": "hi"})
    assert [c for n, c in third.steps if n in ("RUN", "COPY")] == [True, True, True, False]
    assert changed.digest != image.digest
    fourth, _ = build(images, runtime, context, CONTAINERFILE, args={"GREETING": "hi"}, no_cache=True)
    assert not any(cached for _, cached in fourth.steps)


def _spec(image: str, script: str) -> ContainerSpec:
    """``sh -c script`` in ``image``."""
    return replace(sh("check", script), image=image, entrypoint=("sh", "-c"), args=(script,))


def test_copy_outside_the_context_and_a_failing_run_are_refused(
    tmp_path: Path, images: ImageStore, runtime: Runtime
) -> None:
    context = make_context(tmp_path)
    with pytest.raises(BuildError, match="outside the build context") as err:
        build(images, runtime, context, "FROM busybox\nCOPY ../secret /x\n")
    assert err.value.where.endswith(":2: COPY")
    with pytest.raises(BuildError, match="exited with code 3") as err:
        build(images, runtime, context, "FROM busybox\nRUN exit 3\n")
    assert err.value.where.endswith(":2: RUN")
    assert runtime.list() == []  # the build container is gone
    with pytest.raises(BuildError, match="still empty"):
        build(images, runtime, context, "FROM scratch\nRUN true\n")


def test_from_scratch_with_copy_only(tmp_path: Path, images: ImageStore, runtime: Runtime) -> None:
    context = make_context(tmp_path)
    _, image = build(images, runtime, context, "FROM scratch\nCOPY files /\nCMD [\"/a.txt\"]\n", tag="tiny:1")
    tiny = images.get("tiny:1")
    assert len(tiny.layers) == 1 and tiny.config.cmd == ("/a.txt",)
    assert (tiny.layer_dirs[0] / "sub" / "b.txt").read_text() == "b\n"


def _tar_layer(path: Path, entries: dict[str, bytes | None]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.size = len(data)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(data))
    return path


def test_oci_whiteouts_hide_lower_files_in_a_container(tmp_path: Path, images: ImageStore, runtime: Runtime) -> None:
    base = images.get("busybox")
    lower = images.add_layer_tar(_tar_layer(images.tmp / "l1.tar", {
        "data": None, "data/keep": b"k", "data/drop": b"d", "opaque": None, "opaque/old": b"o",
    }))
    upper = images.add_layer_tar(_tar_layer(images.tmp / "l2.tar", {
        "data/.wh.drop": b"", "opaque/.wh..wh..opq": b"", "opaque/new": b"n", f"{Path(MARKER).parent}/.wh.{Path(MARKER).name}": b"",
    }))
    images.create([lower, upper], ImageConfig(cmd=("sh",)), "layered:1", base=base)
    runtime.run("wh", _spec("layered:1", f"ls /data; ls /opaque; test -e /{MARKER} && echo marker-visible; echo done"))
    runtime.wait("wh", timeout=30)
    assert lines(runtime, "wh") == ["keep", "new", "done"]


def test_commit_makes_an_image_of_the_rw_layer(images: ImageStore, runtime: Runtime) -> None:
    runtime.run("src", _spec("busybox", f"echo fixed > /fix.txt; rm /{MARKER}"))
    runtime.wait("src", timeout=30)
    image = commit(images, runtime, "src", "fixed:1", "hotfix")
    assert len(image.layers) == len(images.get("busybox").layers) + 1
    assert image.config_json["history"][-1] == {"created_by": "moor container commit src", "comment": "hotfix"}
    runtime.run("dst", _spec("fixed:1", f"cat /fix.txt; test -e /{MARKER} || echo marker-gone"))
    runtime.wait("dst", timeout=30)
    assert lines(runtime, "dst") == ["fixed", "marker-gone"]


def test_copy_stages_the_same_layer_whatever_the_time_of_the_build(
    tmp_path: Path, images: ImageStore, runtime: Runtime
) -> None:
    """Directories a COPY makes itself carry a fixed mtime, so an unchanged COPY hits the cache
    in any later second (it used to miss when two builds straddled a second boundary)."""
    context = make_context(tmp_path)
    past = 1_000_000_000  # not this second: copying into a directory must not leave it at "now"
    for directory in (context / "files" / "sub", context / "files"):
        os.utime(directory, (past, past))
    _, image = build(images, runtime, context, "FROM busybox\nCOPY one.txt /srv/deep/\nCOPY files/ /opt/app/\n")
    members = {}
    for layer in images.get(image.digest).layers[1:]:
        with tarfile.open(images.blobs.path(layer.digest)) as tar:
            members |= {m.name: m for m in tar.getmembers()}
    for implicit in ("srv", "srv/deep", "opt"):
        assert members[implicit].isdir() and members[implicit].mtime == IMPLICIT_DIR_MTIME, implicit
    assert members["opt/app"].mtime == members["opt/app/sub"].mtime == past  # copied from the context: kept


# --- the context is a root ------------------------------------------------------------------


def _layer_members(images: ImageStore, image: Image) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(images.blobs.path(image.layers[-1].digest)) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_copy_never_reads_through_a_context_symlink_that_points_out(
    tmp_path: Path, images: ImageStore, runtime: Runtime
) -> None:
    host = HostFiles(tmp_path)
    context = make_context(tmp_path)
    (context / "out").symlink_to(host.root)
    before = host.snapshot(allowed=(images.root, context))
    for copy in ("COPY out/secret.txt /", "COPY out/* /x/", f"COPY out{host.root}/secret.txt /"):
        with pytest.raises(BuildError, match="no source file matches"):
            build(images, runtime, context, f"FROM busybox\n{copy}\n")
    assert host.snapshot(allowed=(images.root, context)) == before
    for image in images.list():
        assert not any("secret" in name for name in _layer_members(images, image))


def test_copy_follows_symlinks_inside_the_context_as_docker_does(
    tmp_path: Path, images: ImageStore, runtime: Runtime
) -> None:
    """A source path's symlinks resolve inside the context (an absolute one against its root);
    in a copied directory, symlinks stay symlinks."""
    context = make_context(tmp_path)
    (context / "alias").symlink_to("files")
    (context / "abs").symlink_to("/files")  # /files of the context, not of the host
    (context / "files" / "shadow").symlink_to("/etc/shadow")
    text = "FROM busybox\nCOPY alias/a.txt /one.txt\nCOPY abs/sub/b.txt /two.txt\nCOPY abs /tree/\n"
    _, image = build(images, runtime, context, text)
    layers = images.get(image.digest).layers
    members = {}
    for layer in layers[-3:]:
        with tarfile.open(images.blobs.path(layer.digest)) as tar:
            members |= {m.name: (m, tar.extractfile(m).read() if m.isreg() else b"") for m in tar.getmembers()}
    assert members["one.txt"][1] == b"a\n" and members["two.txt"][1] == b"b\n"
    link, _ = members["tree/shadow"]
    assert link.issym() and link.linkname == "/etc/shadow"  # copied as a link, never read


def test_a_symlink_one_source_stages_cannot_lead_the_next_out(
    tmp_path: Path, images: ImageStore, runtime: Runtime
) -> None:
    host = HostFiles(tmp_path)
    context = make_context(tmp_path)
    (context / "d1").mkdir()
    (context / "d1" / "sub").symlink_to(host.dir)
    (context / "d2" / "sub").mkdir(parents=True)
    (context / "d2" / "sub" / "planted.txt").write_text("planted\n")
    before = host.snapshot(allowed=(images.root, context))
    with pytest.raises(BuildError, match="copied by an earlier source is in the way"):
        build(images, runtime, context, "FROM busybox\nCOPY d1 d2 /x/\n")
    assert host.snapshot(allowed=(images.root, context)) == before
    assert not (host.dir / "planted.txt").exists()


def test_dockerignore_and_containerfile_are_read_inside_the_context(
    tmp_path: Path, images: ImageStore, runtime: Runtime
) -> None:
    host = HostFiles(tmp_path)
    (host.root / "ignore").write_text("one.txt\n")
    (host.root / "Containerfile").write_text("FROM busybox\nCOPY files /files\n")
    context = make_context(tmp_path)
    (context / ".dockerignore").unlink()
    (context / ".dockerignore").symlink_to(host.root / "ignore")
    _, image = build(images, runtime, context, "FROM busybox\nCOPY one.txt /one.txt\n")  # not ignored
    assert "one.txt" in _layer_members(images, image)
    (context / "Containerfile").unlink()
    (context / "Containerfile").symlink_to(host.root / "Containerfile")
    with pytest.raises(BuildError, match="no such regular file in the build context"):
        Builder(images, lambda: runtime, Recorder()).build(context, context / "Containerfile", "x:1", {})


def test_a_context_named_through_a_symlink_builds(tmp_path: Path, images: ImageStore, runtime: Runtime) -> None:
    context = make_context(tmp_path)
    (tmp_path / "ctx-link").symlink_to(context)
    _, image = build(images, runtime, tmp_path / "ctx-link", "FROM busybox\nCOPY one.txt /one.txt\n")
    assert "one.txt" in _layer_members(images, image)

"""Running a parsed Containerfile against the image store and the container runtime.

Every step turns the current image into the next one (an untagged image in the store):
RUN runs the command in a container of the current image and keeps its overlay upper dir
as a new layer (whiteouts written in OCI form); COPY/ADD stage files from the context
(``.dockerignore`` applied, nothing outside the context) and keep them as a layer; the
other instructions change the config only. A step's result is cached under the hash of
(the parent image's digest, the instruction with its variables expanded, the build args
it sees, and for COPY/ADD the digest of the staged layer), so an unchanged step is a
cache hit and a change invalidates every step after it.

The context is a root (agent.runtime.rootpath, RESOLVE_IN_ROOT), as Docker's builder treats
it: a COPY source path — wildcards included — is resolved inside the context, symlinks on
the way and a symlink named as the source itself followed, but an absolute target or ``..``
stops at the context's root (``out -> /outside``: ``COPY out/secret.txt /`` looks for
``<context>/outside/secret.txt``). Inside a directory being copied, symlinks are copied as
symlinks, never followed; only directories, regular files and symlinks are copied. The
staging directory the layer is made from follows no symlink either: a symlink one source
put there cannot lead a later source's files elsewhere (that COPY fails with a BuildError).
The Containerfile (when it is in the context) and ``.dockerignore`` are read the same way,
within ``TEXT_BOUND`` bytes.
"""

from __future__ import annotations

import dataclasses
import errno
import fnmatch
import hashlib
import json
import os
import shutil
import stat
import tempfile
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from agent.runtime.images.builds import ignore
from agent.runtime.images.builds.parser import Instruction, command, duration, expand, key_values, parse, words
from agent.runtime.containers.containers import ContainerSpec, ContainerStatus, Runtime
from agent.runtime.errors import BuildError, ImageNotFound, RuntimeFailure
from agent.runtime.images.store import Healthcheck, Image, ImageConfig, ImageStore, Layer
from agent.runtime.images.layers import write_tar
from agent.runtime.images.blobs import sha256_file
from agent.runtime.rootpath import DIR_FLAGS, Root, open_regular_at, split

# Build args Docker predefines: usable without an ARG line.
PREDEFINED_ARGS = frozenset({"HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY"})
TEXT_BOUND = 1 << 20  # bytes of a Containerfile or a .dockerignore
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class Reporter(Protocol):
    def step(self, number: int, total: int, instruction: str, cached: bool) -> None: ...

    def output(self, line: str) -> None: ...


@dataclass
class _State:
    image: Image | None  # None: FROM scratch with nothing yet
    config: ImageConfig
    args: dict[str, str] = field(default_factory=dict)  # ARGs in scope with their values

    @property
    def env(self) -> dict[str, str]:
        """Variables for expansion: ARGs, overridden by the image's ENV."""
        values = dict(self.args)
        values.update(dict(e.split("=", 1) for e in self.config.env if "=" in e))
        return values


@dataclass
class Builder:
    store: ImageStore
    runtime_factory: Callable[[], Runtime]  # a Runtime over the same store, made on first RUN
    reporter: Reporter
    pull: Callable[[str], Image] | None = None  # fetch a FROM image missing locally
    _runtime: Runtime | None = None

    def build(self, context: Path, containerfile: Path, tag: str | None, build_args: Mapping[str, str],
              no_cache: bool = False) -> Image:
        try:
            ctx = Root(context, follow=True)
        except OSError as e:
            raise BuildError(str(context), f"cannot open the build context: {e}") from e
        with ctx:
            return self._build(ctx, containerfile, tag, build_args, no_cache)

    def _build(self, ctx: Root, containerfile: Path, tag: str | None, build_args: Mapping[str, str],
               no_cache: bool) -> Image:
        inside = containerfile.absolute().is_relative_to(ctx.path.absolute())
        relative = containerfile.absolute().relative_to(ctx.path.absolute()).as_posix() if inside else ""
        text = _read_text(ctx, relative, str(containerfile)) if inside else _read_outside(containerfile)
        if text is None:
            raise BuildError(str(containerfile), "cannot read: no such regular file in the build context")
        instructions = parse(text, str(containerfile))
        rules = ignore.rules(_read_text(ctx, ".dockerignore", ".dockerignore") or "")
        state = _State(None, ImageConfig())
        with self.store.writing():
            for number, inst in enumerate(instructions, 1):
                state = self._step(state, inst, ctx, rules, dict(build_args), no_cache, number, len(instructions))
            if state.image is None or state.image.config != state.config:
                state.image = self._commit(state, [], "")
            if tag is None:
                return state.image
            return self.store.tag(state.image.digest, tag)

    # --- steps --------------------------------------------------------------------------------

    def _step(self, state: _State, inst: Instruction, context: Root, rules: list[ignore.Rule],
              build_args: dict[str, str], no_cache: bool, number: int, total: int) -> _State:
        if inst.name == "ARG":
            for key, default in key_values(inst, state.env):
                state.args[key] = build_args.get(key, default)
            self.reporter.step(number, total, str(inst), cached=False)
            return state
        if inst.name == "FROM":
            self.reporter.step(number, total, str(inst), cached=False)
            return self._from(inst, state)
        if inst.name in ("RUN", "COPY", "ADD"):
            return self._layer_step(state, inst, context, rules, build_args, no_cache, number, total)
        self.reporter.step(number, total, str(inst), cached=False)
        state.config = self._configure(state, inst)
        return state

    def _from(self, inst: Instruction, state: _State) -> _State:
        reference = expand(inst.text, state.args)
        if reference == "scratch":
            return _State(None, ImageConfig(), {})
        try:
            image = self.store.get(reference)
        except ImageNotFound:
            if self.pull is None:
                raise inst.error(f"image {reference} is not in the store") from None
            try:
                image = self.pull(reference)
            except RuntimeFailure as e:
                raise inst.error(str(e)) from e
        return _State(image, image.config, {})

    def _configure(self, state: _State, inst: Instruction) -> ImageConfig:
        config, env = state.config, state.env
        replace = dataclasses.replace
        match inst.name:
            case "ENV":
                values = dict(e.split("=", 1) for e in config.env if "=" in e)
                for key, value in key_values(inst, env, legacy=True):
                    values[key] = value
                return replace(config, env=tuple(f"{k}={v}" for k, v in values.items()))
            case "LABEL":
                return replace(config, labels={**config.labels, **dict(key_values(inst, env))})
            case "WORKDIR":
                path = expand(inst.text, env)
                return replace(config, working_dir=os.path.normpath(os.path.join(config.working_dir or "/", path)))
            case "USER":
                return replace(config, user=expand(inst.text, env))
            case "ENTRYPOINT":
                # A new entrypoint drops the CMD inherited from the base image, as Docker does.
                return replace(config, entrypoint=command(inst), cmd=())
            case "CMD":
                return replace(config, cmd=command(inst))
            case "EXPOSE":
                ports = set(config.exposed_ports)
                for word in words(inst, env):
                    port, _, proto = word.partition("/")
                    if not port.isdigit() or proto not in ("", "tcp", "udp", "sctp"):
                        raise inst.error(f"{word!r} is not PORT[/tcp|udp|sctp]")
                    ports.add(f"{port}/{proto or 'tcp'}")
                return replace(config, exposed_ports=tuple(sorted(ports)))
            case "VOLUME":
                return replace(config, volumes=tuple(sorted(set(config.volumes) | set(words(inst, env)))))
            case "STOPSIGNAL":
                return replace(config, stop_signal=expand(inst.text, env))
            case "HEALTHCHECK":
                return replace(config, healthcheck=self._healthcheck(inst))
        raise inst.error("not a config instruction")  # pragma: no cover - parse() knows every name

    @staticmethod
    def _healthcheck(inst: Instruction) -> Healthcheck:
        word, _, rest = inst.text.partition(" ")
        rest = rest.strip()
        if word.upper() == "NONE":
            return Healthcheck(test=("NONE",))
        if word.upper() != "CMD" or not rest:
            raise inst.error("want HEALTHCHECK [OPTIONS] CMD command, or HEALTHCHECK NONE")
        exec_form = _json_list(rest) if rest.startswith("[") else ()
        test = ("CMD", *exec_form) if exec_form else ("CMD-SHELL", rest)
        flags = inst.flags
        retries = flags.get("retries", "0")
        if not retries.isdigit():
            raise inst.error(f"--retries={retries} is not a number")
        return Healthcheck(
            test=test,
            interval=duration(inst, flags["interval"]) if "interval" in flags else 0,
            timeout=duration(inst, flags["timeout"]) if "timeout" in flags else 0,
            start_period=duration(inst, flags["start-period"]) if "start-period" in flags else 0,
            retries=int(retries),
        )

    def _layer_step(self, state: _State, inst: Instruction, context: Root, rules: list[ignore.Rule],
                    build_args: dict[str, str], no_cache: bool, number: int, total: int) -> _State:
        parent = self._commit(state, [], "") if state.image is None or state.image.config != state.config else state.image
        state.image = parent
        staged: Path | None = None
        try:
            if inst.name == "RUN":
                key_text = f"{inst}\n{sorted(state.args.items())}"
            else:
                staged = self._stage(state, inst, context, rules)
                key_text = f"{inst}\n{sha256_file(staged)}"
            key = hashlib.sha256(f"{parent.digest}\n{key_text}".encode()).hexdigest()
            cached = None if no_cache else self.store.cache_get(key)
            self.reporter.step(number, total, str(inst), cached=cached is not None)
            if cached is not None:
                return _State(cached, cached.config, state.args)
            if staged is None:
                staged = self._run(state, inst)
            layer = self.store.add_layer_tar(staged)
            image = self._commit(state, [layer], str(inst))
            self.store.cache_put(key, image)
            return _State(image, image.config, state.args)
        finally:
            if staged is not None:
                staged.unlink(missing_ok=True)

    def _commit(self, state: _State, layers: list[Layer], created_by: str) -> Image:
        history = [{"created_by": created_by}] if created_by else []
        return self.store.create(layers, state.config, None, base=state.image, history=history)

    # --- RUN ----------------------------------------------------------------------------------

    def _run(self, state: _State, inst: Instruction) -> Path:
        if state.image is None or not state.image.layers:
            raise inst.error("RUN needs a file system with a shell: the image is still empty (FROM scratch)")
        if self._runtime is None:
            self._runtime = self.runtime_factory()
        runtime = self._runtime
        container_id = f"moorage-build-{uuid.uuid4().hex[:12]}"
        argv = command(inst)
        env = {k: v for k, v in state.args.items() if k not in dict(e.split("=", 1) for e in state.config.env)}
        spec = ContainerSpec(name=container_id[:63], image=state.image.digest, entrypoint=argv[:1], args=argv[1:],
                             env=env, labels={"moorage.build": "1"})
        try:
            runtime.run(container_id, spec)
            shown = 0
            for record in runtime.read_logs(container_id, follow=True):
                self.reporter.output(record.line)
                shown += 1
            final = runtime.wait(container_id)
            for record in list(runtime.read_logs(container_id))[shown:]:  # what the shim drained after the exit
                self.reporter.output(record.line)
            if final.status is not ContainerStatus.EXITED or final.exit_code != 0:
                raise inst.error(f"the command exited with code {final.exit_code}")
            fd, tar_path = tempfile.mkstemp(dir=self.store.work_dir, prefix="run-", suffix=".tar")
            with os.fdopen(fd, "wb") as out:
                write_tar(final.upper_dir, out, overlay=True)
            return Path(tar_path)
        except RuntimeFailure as e:
            if isinstance(e, BuildError):
                raise
            raise inst.error(str(e)) from e
        finally:
            try:
                runtime.remove(container_id, force=True)
            except RuntimeFailure:
                pass

    # --- COPY / ADD ---------------------------------------------------------------------------

    def _stage(self, state: _State, inst: Instruction, context: Root, rules: list[ignore.Rule]) -> Path:
        """The layer tar of the files COPY/ADD puts in place (see the module docstring)."""
        args = words(inst, state.env)
        if len(args) < 2:
            raise inst.error("needs at least one source and a destination")
        *sources, dest = args
        for source in sources:
            if "://" in source:
                raise inst.error(f"{source}: remote sources are not supported (no network in builds)")
        workdir = state.config.working_dir or "/"
        target = os.path.normpath(os.path.join(workdir, dest)).lstrip("/")
        into_dir = dest.endswith(("/", "/.")) or dest == "." or len(sources) > 1 or not target
        stage_dir = Path(tempfile.mkdtemp(dir=self.store.work_dir, prefix="stage-"))
        try:
            with Root(stage_dir) as stage:
                copier = _Copier(context, stage, rules, _owner(inst))
                matched = 0
                copied_a_directory = False
                for source in sources:
                    relative = os.path.normpath(source.lstrip("/"))
                    if relative == ".." or relative.startswith("../"):
                        raise inst.error(f"{source} is outside the build context")
                    for path in _glob(context, relative) if _is_glob(relative) else [relative]:
                        if path != "." and ignore.ignored(path, rules):
                            continue
                        try:
                            st = context.stat(path)
                        except FileNotFoundError:
                            continue
                        matched += 1
                        if stat.S_ISDIR(st.st_mode):
                            copier.tree(path, target)
                            copied_a_directory = True
                        elif stat.S_ISREG(st.st_mode):
                            copier.file(path, f"{target}/{path.rsplit('/', 1)[-1]}" if into_dir else target)
                        else:
                            raise inst.error(f"{source}: not a regular file or a directory")
                if not matched:
                    raise inst.error(f"no source file matches {' '.join(sources)} in the context (or all are ignored)")
                _make_parents(stage, target, into_dir and not copied_a_directory)
            fd, tar_path = tempfile.mkstemp(dir=self.store.work_dir, prefix="copy-", suffix=".tar")
            with os.fdopen(fd, "wb") as out:
                write_tar(stage_dir, out, max_depth=self.store.limits.path_depth)
            return Path(tar_path)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                raise inst.error(f"a symlink or file copied by an earlier source is in the way of {e.filename}") from e
            raise inst.error(str(e)) from e
        finally:
            shutil.rmtree(stage_dir, ignore_errors=True)


def _json_list(text: str) -> tuple[str, ...]:
    try:
        value = json.loads(text.strip())
    except ValueError:
        return ()
    return tuple(value) if isinstance(value, list) and all(isinstance(v, str) for v in value) else ()


def _is_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def _owner(inst: Instruction) -> tuple[int, int] | None:
    chown = inst.flags.get("chown")
    if chown is None:
        return None
    user, _, group = chown.partition(":")
    if not user.isdigit() or (group and not group.isdigit()):
        raise inst.error(f"--chown={chown}: numeric UID[:GID] only")
    return int(user), int(group or user)


def _read_text(root: Root, relative: str, what: str) -> str | None:
    """A text file of the context (within TEXT_BOUND), or None when there is no such regular file."""
    try:
        fd = root.open_regular(relative)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise BuildError(what, f"cannot read: {e}") from e
    if fd is None:
        return None
    with os.fdopen(fd, "rb") as f:
        data = f.read(TEXT_BOUND + 1)
    if len(data) > TEXT_BOUND:
        raise BuildError(what, f"larger than {TEXT_BOUND} bytes")
    return data.decode(errors="replace")


def _read_outside(path: Path) -> str:
    """A Containerfile given outside the context (``-f``): the user's own file, bounded all the same."""
    try:
        with open(path, "rb") as f:
            data = f.read(TEXT_BOUND + 1)
    except OSError as e:
        raise BuildError(str(path), f"cannot read: {e}") from e
    if len(data) > TEXT_BOUND:
        raise BuildError(str(path), f"larger than {TEXT_BOUND} bytes")
    return data.decode(errors="replace")


def _glob(context: Root, pattern: str) -> list[str]:
    """Context paths matching ``pattern`` component by component, each directory resolved in the context."""
    found = [""]
    for part in pattern.split("/"):
        if not _is_glob(part):
            found = [f"{p}/{part}" if p else part for p in found]
            continue
        matches = []
        for prefix in found:
            try:
                fd = context.open_dir(prefix)
            except OSError:
                continue
            try:
                names = os.listdir(fd)
            finally:
                os.close(fd)
            matches += [f"{prefix}/{n}" if prefix else n for n in sorted(names) if fnmatch.fnmatchcase(n, part)]
        found = matches
    return found


class _Copier:
    """Copies from the context (a following Root) into the stage (a Root that follows nothing)."""

    def __init__(self, context: Root, stage: Root, rules: list[ignore.Rule], owner: tuple[int, int] | None) -> None:
        self.context, self.stage, self.rules, self.owner = context, stage, rules, owner

    def file(self, source: str, target: str) -> None:
        fd = self.context.open_regular(source)
        if fd is None:
            return  # replaced since it was looked at
        try:
            parent, name = split(target)
            out_dir = self.stage.make_dirs(parent)
            try:
                self._write(fd, os.fstat(fd), out_dir, name)
            finally:
                os.close(out_dir)
        finally:
            os.close(fd)

    def tree(self, source: str, target: str) -> None:
        """The contents of the context directory ``source`` into ``target``, .dockerignore applied."""
        src = self.context.open_dir(source)
        try:
            out = self.stage.make_dirs(target)
            try:
                self._tree(src, out, "" if source == "." else source)
            finally:
                os.close(out)
        finally:
            os.close(src)

    def _tree(self, src: int, out: int, relative: str) -> None:
        """Copy the directory ``src`` into ``out``, then give ``out`` its mode and times — last:
        what is copied into a directory sets its mtime to now, and the staged layer (the step's
        cache key) must not depend on the second."""
        if self.owner is not None:
            os.fchown(out, *self.owner)
        for name in sorted(os.listdir(src)):
            path = f"{relative}/{name}" if relative else name
            st = os.stat(name, dir_fd=src, follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode) and ignore.ignored(path, self.rules):
                continue  # directories are walked: a "!" rule may keep something inside
            if stat.S_ISDIR(st.st_mode):
                try:
                    os.mkdir(name, 0o755, dir_fd=out)
                except FileExistsError:
                    pass
                child_src = os.open(name, DIR_FLAGS, dir_fd=src)
                try:
                    child_out = os.open(name, DIR_FLAGS, dir_fd=out)
                    try:
                        self._tree(child_src, child_out, path)
                    finally:
                        os.close(child_out)
                finally:
                    os.close(child_src)
            elif stat.S_ISREG(st.st_mode):
                fd = open_regular_at(src, name)
                if fd is None:
                    continue  # replaced since it was looked at
                try:
                    self._write(fd, os.fstat(fd), out, name)
                finally:
                    os.close(fd)
            elif stat.S_ISLNK(st.st_mode):
                _replace(out, name)
                os.symlink(os.readlink(name, dir_fd=src), name, dir_fd=out)
                if self.owner is not None:
                    os.chown(name, *self.owner, dir_fd=out, follow_symlinks=False)
                os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=out, follow_symlinks=False)
        st = os.fstat(src)
        os.fchmod(out, stat.S_IMODE(st.st_mode))
        os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns))

    def _write(self, src: int, st: os.stat_result, out_dir: int, name: str) -> None:
        _replace(out_dir, name)
        out = os.open(name, _NEW_FILE, 0o600, dir_fd=out_dir)
        try:
            left = st.st_size
            while left > 0 and (n := os.copy_file_range(src, out, left)):
                left -= n
            if self.owner is not None:
                os.fchown(out, *self.owner)
            os.fchmod(out, stat.S_IMODE(st.st_mode))
            os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns))
        finally:
            os.close(out)


def _replace(dir_fd: int, name: str) -> None:
    """Make room for a later source's file or symlink of the same name (not over a directory)."""
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass


# The mtime of directories a COPY makes on its own (not copied from the context). A
# fixed one keeps the staged layer, and so the step's cache key, the same from one
# build to the next, as the context's own files do (SOURCE_DATE_EPOCH-style).
IMPLICIT_DIR_MTIME = 0


def _make_parents(stage: Root, target: str, target_is_implicit: bool) -> None:
    """Directories on the way to the destination (and the destination itself when the COPY
    made it rather than copying a directory there) get the usual 0755 and a fixed mtime."""
    parts = [p for p in target.split("/") if p]
    implicit = ["/".join(parts[:i]) for i in range(1, len(parts))]
    if target_is_implicit:
        implicit.append(target)
    for path in implicit:
        try:
            fd = stage.open(path, DIR_FLAGS)
        except (FileNotFoundError, NotADirectoryError):
            continue
        try:
            os.fchmod(fd, 0o755)
            os.utime(fd, (IMPLICIT_DIR_MTIME, IMPLICIT_DIR_MTIME))
        finally:
            os.close(fd)

"""A container's read/write layer as a new image (``moor container commit``): the emergency fix.

The upper dir of the container's overlay becomes one more layer on top of the image the
container was created from (by digest, so a tag moved since does not matter), with the
overlay whiteouts written in OCI form. A running container is read as it is at that moment
(nothing is paused): stop it first for a consistent snapshot.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from agent.runtime.containers.bundle import ContainerDir
from agent.runtime.containers.containers import Runtime
from agent.runtime.images.store import Image, ImageStore
from agent.runtime.images.layers import write_tar


def commit(store: ImageStore, runtime: Runtime, container_id: str, reference: str, message: str = "") -> Image:
    state = runtime.state(container_id)
    base = store.get(ContainerDir(runtime.bundle_dir(container_id)).read_bundle().image_digest)
    with store.writing():
        fd, tar_path = tempfile.mkstemp(dir=store.tmp, prefix="commit-", suffix=".tar")
        try:
            with os.fdopen(fd, "wb") as out:
                write_tar(state.upper_dir, out, overlay=True)
            layer = store.add_layer_tar(Path(tar_path))
        finally:
            Path(tar_path).unlink(missing_ok=True)
        history = {"created_by": f"moor container commit {container_id}", **({"comment": message} if message else {})}
        return store.create([layer], base.config, reference, base=base, history=[history])

"""``user: uid[:gid]`` or a name, resolved against the image's /etc/passwd and /etc/group.

``resolve`` is pure; ``image_tables`` reads the two files from the image's layers as a
container would see them, symlinks followed inside the image only (images.view).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.runtime.images.view import ImageView

TABLE_BOUND = 4 << 20  # bytes of /etc/passwd or /etc/group read from an image


@dataclass(frozen=True)
class User:
    uid: int
    gid: int
    additional_gids: tuple[int, ...] = ()
    home: str = "/"


def _table(text: str) -> list[list[str]]:
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def resolve(spec: str, passwd: str, group: str) -> User:
    """Resolve ``spec`` ("", "name", "uid", "name:group", "uid:gid") the way Docker does.

    A numeric uid needs no passwd entry; a name must have one. Supplementary groups are the
    groups that list the user by name. ValueError names what could not be found.
    """
    user_part, _, group_part = (spec or "0").partition(":")
    users = [row for row in _table(passwd) if len(row) >= 7]
    groups = [row for row in _table(group) if len(row) >= 4]
    entry = next((row for row in users if row[0] == user_part or (user_part.isdigit() and row[2] == user_part)), None)
    if entry is None and not user_part.isdigit():
        raise ValueError(f"user {user_part!r} not found in the image's /etc/passwd")
    uid = int(user_part) if user_part.isdigit() else int(entry[2])  # type: ignore[index]
    name = entry[0] if entry else ""
    gid = int(entry[3]) if entry else 0
    if group_part:
        if group_part.isdigit():
            gid = int(group_part)
        else:
            found = next((row for row in groups if row[0] == group_part), None)
            if found is None:
                raise ValueError(f"group {group_part!r} not found in the image's /etc/group")
            gid = int(found[2])
    extra = tuple(sorted({int(row[2]) for row in groups if name and name in row[3].split(",") and int(row[2]) != gid}))
    return User(uid=uid, gid=gid, additional_gids=extra, home=entry[5] if entry else "/")


def image_tables(layer_dirs: Sequence[Path]) -> tuple[str, str]:
    """The image's /etc/passwd and /etc/group ("" where missing or not a regular file).

    ValueError when one is over TABLE_BOUND.
    """
    with ImageView(layer_dirs) as view:
        passwd, group = (view.read_file(name, TABLE_BOUND) or b"" for name in ("etc/passwd", "etc/group"))
    return passwd.decode(errors="replace"), group.decode(errors="replace")

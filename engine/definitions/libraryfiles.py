"""A library is its folder: the one reader of the files in it.

A journey library comes from people and from pull requests, so a file in it may be a link.
A link is followed only when it stays inside the library: one that points outside (to
``/etc/shadow``, to a home folder) is refused with a problem that names the link and never
shows a byte of what it points at, so nothing lands in a finding or a CI log. A dangling
link, a folder or a device named ``*.yaml``, a file that cannot be opened: each is one
problem for that file, never a traceback, and the rest of the library is read as usual.

The check is made on the file as opened (``/proc/self/fd`` on Linux), so a link swapped
between the check and the read changes nothing; it is opened without blocking, so a named
pipe cannot hang a validation.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from engine.definitions.yamlsafe import MAX_FILE_BYTES, YamlError, _human, decode, parse

#: Folders never read as part of a library, besides hidden ones (the validator's cache among them).
SKIP_DIRS = frozenset({"node_modules", "__pycache__"})


class OutsideLibrary(YamlError):
    """The file is a link to somewhere outside the library: it is not read."""


def library_files(root: Path, suffixes: tuple[str, ...] = (".yaml", ".yml")) -> list[str]:
    """Library-relative paths of the files ending with ``suffixes``, in a stable order:
    hidden files and folders and tools' folders are left out, and linked folders are not
    entered (a file link is listed, and :func:`read_bytes` decides whether it may be read)."""
    found = []
    for folder, dirs, files in os.walk(root):  # does not follow links to folders
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIP_DIRS)
        for name in files:
            if name.endswith(suffixes) and not name.startswith("."):
                rel = os.path.relpath(os.path.join(folder, name), root).replace(os.sep, "/")
                found.append(rel)
    return sorted(found)


def read_bytes(root: Path, rel: str, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of the library file ``rel``, or :class:`YamlError` saying why it is not
    read: outside the library, dangling, not a file, unreadable, too big."""
    path = root / rel
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise YamlError(_missing(path)) from None
    except OSError as err:
        raise YamlError(f"this file cannot be read ({err.strerror or err})") from None
    try:
        _check_inside(root, path, fd)
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise YamlError(
                "this is not a regular file (a folder, a device or a pipe named like one); remove it"
            )
        if info.st_size > max_bytes:
            raise YamlError(
                f"file is {_human(info.st_size)}, over the {_human(max_bytes)} limit for a "
                "journey file; split it, or raise the limit with --max-file-size"
            )
        chunks, size = [], 0
        while size <= max_bytes:  # a file growing while it is read is still bounded
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > max_bytes:
            raise YamlError(f"file is over the {_human(max_bytes)} limit for a journey file")
        return b"".join(chunks)
    except OSError as err:
        raise YamlError(f"this file cannot be read ({err.strerror or err})") from None
    finally:
        os.close(fd)


def read_text(root: Path, rel: str, max_bytes: int = MAX_FILE_BYTES) -> str:
    return decode(read_bytes(root, rel, max_bytes))


def load(root: Path, rel: str, max_bytes: int = MAX_FILE_BYTES) -> Any:
    """Plain data from the library file ``rel`` (see :func:`engine.definitions.yamlsafe.parse`)."""
    return parse(read_text(root, rel, max_bytes))


def relative(root: Path, path: Path) -> str | None:
    """``path`` relative to the library ``root``, as written (links not followed), or None
    when it is not under it."""
    try:
        return Path(os.path.abspath(path)).relative_to(os.path.abspath(root)).as_posix()
    except ValueError:
        return None


def _check_inside(root: Path, path: Path, fd: int) -> None:
    real = Path(_opened(fd) or os.path.realpath(path))
    home = Path(os.path.realpath(root))
    if real != home and home not in real.parents:
        raise OutsideLibrary(
            f"this file is a link to {str(real)!r}, outside the library {str(home)!r}; it is not "
            "read: a library is its folder (copy the file into the library instead of linking it)"
        )


def _opened(fd: int) -> str | None:
    """The real path of an open file, as the system has it (Linux), else None."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


def _missing(path: Path) -> str:
    if path.is_symlink():
        return (
            f"this file is a link to {os.readlink(path)!r}, which does not exist; remove the link "
            "or put the file back"
        )
    return "this file no longer exists (removed while the library was read)"

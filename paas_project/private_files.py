"""Secret files (the development secret key, the generated admin password): created with
mode 0600 from the first byte, never widened and then narrowed by a chmod."""

from __future__ import annotations

import os
from pathlib import Path


def private_file_write(*, path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (replacing it) through a fresh 0600 file and a rename,
    so no reader ever sees the secret under a wider mode or half written."""
    tmp = _fresh_private(path, text)
    try:
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def private_file_create(*, path: Path, text: str) -> str:
    """Create ``path`` holding ``text`` (0600) unless it exists; return what it holds.
    Two processes starting at once agree on the first one's content."""
    if not path.exists():
        tmp = _fresh_private(path, text)
        try:
            os.link(tmp, path)  # refuses to replace: the first process wins
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text()


def _fresh_private(path: Path, text: str) -> Path:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)  # left by a crashed process of the same pid
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    return tmp

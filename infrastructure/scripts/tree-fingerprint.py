#!/usr/bin/env python3
"""Print a fingerprint of a directory tree: one line per file (path, size, sha256) and
per directory, sorted. `make test` takes one of ./var before the suite and one after;
any difference fails the run, so a test can never have written into a live platform's
data dir unnoticed.

A platform running from the same checkout keeps writing its own database and logs while
the tests run, so for those (SQLite files, *.log, and the Caddy sync counter *.count)
only the name counts, not the content: a new database or log file still shows.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

NAME_ONLY = (".sqlite3", ".sqlite3-wal", ".sqlite3-shm", ".sqlite3-journal", ".log",
             ".count")


def fingerprint(root: Path) -> list[str]:
    lines = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            lines.append(f"{rel}\tlink\t{path.readlink()}")
        elif path.is_dir():
            lines.append(f"{rel}/")
        elif path.name.endswith(NAME_ONLY):
            lines.append(f"{rel}\t(name only)")
        elif path.is_file():
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            lines.append(f"{rel}\t{path.stat().st_size}\t{digest}")
    return lines


if __name__ == "__main__":
    root = Path(sys.argv[1])
    if root.is_dir():
        print("\n".join(fingerprint(root)))

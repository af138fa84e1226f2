"""Following a container's log: one Docker read per container however many follow it.

Followers poll with a cursor (the timestamp of the last line they have). Each web
process keeps the last ``WINDOW`` lines of every followed container for
``PAAS_LOG_CACHE_SECONDS``; the first poll after that reads Docker again while the
others wait for that one read (a lock per container), and at most
``PAAS_LOG_READERS`` reads run at once per process. So a crowd of log viewers costs a
few cheap reads per second and can never hold every worker thread that claims need.

Polling rather than a stream: a stream holds a gunicorn thread per viewer for as long
as the page is open; a poll holds one for milliseconds (Coolify, CapRover and Portainer
poll every 2-3 s; we poll every second to show new lines within about a second).
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field

from django.conf import settings

from pools.engine import get_engine
from pools.errors import PaasError

WINDOW = 1000  # lines kept per container; a cursor older than that gets the window
READ_WAIT = 2.0  # seconds a poll waits for a free reader before serving what it has
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z ?")
CURSOR = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")


class LogsBusy(PaasError):
    """Too many log reads at once; try again in a moment."""

    code = "logs_busy"
    status = 503


@dataclass
class _Window:
    fetched: float = 0.0
    used: float = 0.0
    entries: list[tuple[str, str]] = field(default_factory=list)  # (cursor, text)
    lock: threading.Lock = field(default_factory=threading.Lock)


_windows: dict[str, _Window] = {}
_guard = threading.Lock()
_readers: threading.BoundedSemaphore | None = None


def log_follow(*, container_id: str, since: str = "", tail: int = 100) -> tuple[list[str], str]:
    """Lines after the cursor ``since`` (or the last ``tail``), and the new cursor."""
    entries = _read_once(container_id, tail) if not since and tail > WINDOW else _read(
        container_id)
    chosen = [e for e in entries if e[0] > since] if since else entries[-tail:]
    cursor = chosen[-1][0] if chosen else since or (entries[-1][0] if entries else "")
    return [text for _, text in chosen], cursor


def _read(container_id: str) -> list[tuple[str, str]]:
    window = _window_for(container_id)
    with window.lock:  # one reader per container: the others wait and share its result
        window.used = time.monotonic()
        if window.used - window.fetched < settings.PAAS_LOG_CACHE_SECONDS:
            return window.entries
        if not _reader_slots().acquire(timeout=READ_WAIT):
            if window.fetched:
                return window.entries  # a little stale beats failing
            raise LogsBusy()
        try:
            raw = get_engine().logs(container_id, tail=WINDOW, timestamps=True)
        finally:
            _reader_slots().release()
        window.entries, window.fetched = parse(raw), time.monotonic()
        return window.entries


def _read_once(container_id: str, tail: int) -> list[tuple[str, str]]:
    """A long tail, beyond the shared window: its own read (still bounded)."""
    if not _reader_slots().acquire(timeout=READ_WAIT):
        raise LogsBusy()
    try:
        return parse(get_engine().logs(container_id, tail=tail, timestamps=True))
    finally:
        _reader_slots().release()


def _window_for(container_id: str) -> _Window:
    with _guard:
        if len(_windows) > 200:  # forget containers nobody followed for a minute
            stale = [k for k, w in _windows.items() if time.monotonic() - w.used > 60]
            for key in stale:
                del _windows[key]
        return _windows.setdefault(container_id, _Window())


def _reader_slots() -> threading.BoundedSemaphore:
    global _readers
    with _guard:
        if _readers is None:
            _readers = threading.BoundedSemaphore(max(1, settings.PAAS_LOG_READERS))
        return _readers


def parse(raw: str) -> list[tuple[str, str]]:
    """Docker's ``timestamps=True`` lines → (cursor, text). Docker trims trailing zeros
    of the fraction; cursors pad it to 9 digits so that they sort as text."""
    entries = []
    for line in raw.splitlines():
        match = _STAMP.match(line)
        if match:
            cursor = f"{match[1]}.{(match[2] or '').ljust(9, '0')}Z"
            entries.append((cursor, line[match.end():]))
    return entries


def forget_all() -> None:
    """Drop every cached window (tests)."""
    with _guard:
        _windows.clear()

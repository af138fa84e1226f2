"""A zip of hundreds of thousands of entries is refused before its central directory is
loaded into memory: the entry count is read from the end record and the directory is
walked header by header, so memory stays flat (measured as the peak RSS of a fresh
process) whatever the count says."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from pytest_django.fixtures import Settings

from pools import content
from pools.errors import UnsafeUpload
from tests.unit.api_helpers import zip_of

ROOT = Path(__file__).resolve().parents[2]
# zipfile's local header (30 bytes), central directory entry (46) and end record (22).
LOCAL = struct.Struct("<4s2B4HL2L2H")
CENTRAL = struct.Struct("<4s4B4HL2L5H2L")
END = struct.Struct("<4s4H2LH")
END64 = struct.Struct("<4sQ2H2L4Q")  # zip64 end record (56) and its locator (20)
LOCATOR64 = struct.Struct("<4sLQL")


def many_entry_zip(out: io.BufferedIOBase, entries: int, *, declare: int | None = None) -> None:
    """A valid zip of ``entries`` empty stored files (6-byte names), written fast: the
    records are packed directly. ``declare`` puts a lying count in the end record."""
    central = bytearray()
    offset = 0
    for i in range(entries):
        name = b"%06d" % i
        out.write(LOCAL.pack(b"PK\x03\x04", 20, 0, 0, 0, 0, 0, 0, 0, 0, len(name), 0) + name)
        central += CENTRAL.pack(b"PK\x01\x02", 20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0,
                                len(name), 0, 0, 0, 0, 0, offset) + name
        offset += LOCAL.size + len(name)
    count = entries if declare is None else declare
    out.write(bytes(central))
    if count > 0xFFFF:  # the count needs the zip64 end record, as any real tool writes
        end64_at = offset + len(central)
        out.write(END64.pack(b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, len(central),
                             offset))
        out.write(LOCATOR64.pack(b"PK\x06\x07", 0, end64_at, 1))
        count = 0xFFFF
    out.write(END.pack(b"PK\x05\x06", 0, 0, count, count, len(central), offset, 0))


def test_the_generated_zips_are_real_zips() -> None:
    buffer = io.BytesIO()
    many_entry_zip(buffer, 3)
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as archive:
        assert archive.namelist() == ["000000", "000001", "000002"]
        assert archive.read("000002") == b""
    buffer = io.BytesIO()
    many_entry_zip(buffer, 70_000)  # zip64 end records
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as archive:
        assert len(archive.infolist()) == 70_000 and archive.testzip() is None


def test_more_entries_than_allowed_are_refused_before_zipfile_reads_them(
        settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.PAAS_CONTENT_DIR = tmp_path / "content"
    settings.PAAS_MAX_UPLOAD_FILES = 10
    opened: list[object] = []
    monkeypatch.setattr(zipfile.ZipFile, "_RealGetContents", lambda self: opened.append(self))
    for declare in (None, 1, 70_000):  # an honest count, one that lies, a zip64 one
        buffer = io.BytesIO()
        many_entry_zip(buffer, 21, declare=declare)
        buffer.seek(0)
        with pytest.raises(UnsafeUpload, match="entries; an upload may hold 10 files"):
            content.content_add(slot_id=1, uploads=[("many.zip", buffer)])
    assert opened == []  # the directory was never parsed into objects
    assert content.content_list(slot_id=1) == []


def test_files_and_folders_up_to_the_limits_still_pass(settings: Settings,
                                                       tmp_path: Path) -> None:
    settings.PAAS_CONTENT_DIR = tmp_path / "content"
    settings.PAAS_MAX_UPLOAD_FILES = 3
    data = zip_of({"a/": b"", "b/": b"", "c/": b"", "a/1": b"1", "b/2": b"2", "c/3": b"3"})
    stored = content.content_add(slot_id=1, uploads=[("ok.zip", io.BytesIO(data))])
    assert stored == ["a/1", "b/2", "c/3"]


MEASURE = """
import json, os, resource, sys
import django
django.setup()
from pools import content
from pools.errors import PaasError
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with open(sys.argv[1], "rb") as fh:
    try:
        content.content_add(slot_id=1, uploads=[("many.zip", fh)])
        outcome = "stored"
    except PaasError as exc:
        outcome = f"{exc.code}: {exc.detail}"
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"outcome": outcome, "peak_rss_kib": after, "peak_growth_kib": after - before}))
"""


def test_500000_entry_zip_is_refused_with_flat_memory(tmp_path: Path) -> None:
    path = tmp_path / "many.zip"
    with path.open("wb") as out:
        many_entry_zip(out, 500_000)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings",
           "PAAS_DATA_DIR": str(tmp_path / "data"), "PAAS_MAX_UPLOAD_MB": "50"}
    result = subprocess.run([sys.executable, "-c", MEASURE, str(path)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"500 000-entry zip ({path.stat().st_size / 2**20:.1f} MiB): {report}")
    assert report["outcome"].startswith("unsafe_upload: many.zip has 500000 entries")
    assert report["peak_growth_kib"] < 16 * 1024  # spooling is streamed; no directory loaded

"""The per-slot content store: a user's uploaded files, kept by the platform.

The store under ``PAAS_CONTENT_DIR/<slot_id>`` is the source of truth; the platform
pushes it into the container as an uncompressed tar (``content_tar``). Uploads are
staged in a private temporary folder, checked in full, and only then moved into the
store under a per-slot lock, so a rejected upload writes nothing. Archives are
extracted member by member with our own size accounting: no absolute paths, no
``..``, no links or devices, limits on size, file count and compression ratio.
"""

import fcntl
import io
import lzma
import os
import re
import shutil
import stat
import struct
import tarfile
import time
import uuid
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import IO

from django.conf import settings

from pools.errors import InvalidInput, NotFound, PaasError, UnsafeUpload, UploadTooLarge

MB = 1024 * 1024
# Linux's limits (ext4, xfs, overlayfs): one name, and a whole path with its NUL.
NAME_MAX = 255
PATH_MAX = 4096
_CHUNK = 64 * 1024
# Small files of repeated bytes compress far beyond any sane ratio and are harmless
# (the size limit still holds), so the ratio only applies past this many bytes.
_RATIO_FLOOR = 1 * MB
_DRIVE = re.compile(r"^[A-Za-z]:")
# Malformed archives surface as a zoo of exceptions from the parsers and decompressors.
_CORRUPT = (
    zipfile.BadZipFile,
    tarfile.TarError,
    EOFError,
    zlib.error,
    lzma.LZMAError,
    NotImplementedError,
    struct.error,
    ValueError,
)


# --- Paths -------------------------------------------------------------------------


def content_dir(slot_id: int) -> Path:
    """The folder holding one slot's content store (it may not exist yet)."""
    if isinstance(slot_id, bool) or not isinstance(slot_id, int) or slot_id < 0:
        raise InvalidInput(f"invalid slot id {slot_id!r}")
    return Path(settings.PAAS_CONTENT_DIR) / str(slot_id)


def _clean_relpath(raw: str, *, what: str, scope: str = "target folder") -> str:
    """Normalise a user-given relative path ('a//./b' -> 'a/b'); reject any that could
    leave the root. The empty string means the root itself."""
    if "\x00" in raw:
        raise UnsafeUpload(f"{what} {raw!r} contains a NUL character")
    # A Windows-style '..\\x' must not slip through as one odd file name.
    text = raw.replace("\\", "/")
    if text.startswith("/") or _DRIVE.match(text):
        raise UnsafeUpload(f"{what} '{raw}' is an absolute path")
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise UnsafeUpload(f"{what} '{raw}' escapes the {scope}")
    for part in parts:
        _check_name(part, raw=raw, what=what)
    return "/".join(parts)


def _check_name(part: str, *, raw: str, what: str) -> None:
    try:
        encoded = part.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes from a tar header
        raise InvalidInput(f"{what} {raw!r} is not valid UTF-8") from None
    if len(encoded) > NAME_MAX:
        raise PathTooLong(f"{what} '{_short(raw)}' has a name longer than {NAME_MAX} bytes")


class PathTooLong(InvalidInput):
    """A path longer or deeper than the file system allows. The public functions say
    which request field it came from (``fields``)."""


def _short(raw: str) -> str:
    return raw if len(raw) <= 80 else f"{raw[:60]}…{raw[-16:]}"


def _inside(root: Path, rel: str) -> Path:
    """``root / rel``, checked to fit the file system (PATH_MAX) and to resolve inside
    ``root`` (belt and braces: ``rel`` is already clean, but a link planted on disk must
    not redirect a write)."""
    target = root / rel
    if len(os.fsencode(target)) >= PATH_MAX:  # PATH_MAX counts the final NUL
        raise PathTooLong(f"path '{_short(rel)}' is longer than the file system allows "
                          f"({PATH_MAX} bytes with its folder)")
    if not target.resolve().is_relative_to(root.resolve()):
        raise UnsafeUpload(f"path '{rel}' resolves outside the content folder")
    return target


def _plain_name(name: str) -> str:
    """The stored name of a plain (non-archive) upload: the final component only."""
    if "\x00" in name:
        raise UnsafeUpload(f"file name {name!r} contains a NUL character")
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    if base in ("", ".", ".."):
        raise InvalidInput(f"'{name}' is not a valid file name")
    _check_name(base, raw=name, what="file name")
    return base


def _archive_kind(name: str) -> str | None:
    lower = name.lower()
    if lower.endswith(".zip"):
        return "zip"
    if lower.endswith((".tar", ".tar.gz", ".tgz")):
        return "tar"
    return None


# --- Limits ------------------------------------------------------------------------


class _Meter:
    """Counts something (bytes, files) against a cap; past the cap, raises ``error``."""

    def __init__(self, cap: int, error: Callable[[int], PaasError]):
        self.cap = cap
        self.used = 0
        self.error = error

    def add(self, amount: int) -> None:
        self.used += amount
        if self.used > self.cap:
            raise self.error(self.used)

    def precheck(self, amount: int) -> None:
        """Fail early on a declared amount, before any byte is read."""
        if self.used + amount > self.cap:
            raise self.error(self.used + amount)


class _Limits:
    """The limits for one upload while it is staged. They bound the work an archive can
    cause; the exact check against the existing store happens at commit."""

    def __init__(self) -> None:
        self.max_mb: int = settings.PAAS_MAX_UPLOAD_MB
        self.max_files: int = settings.PAAS_MAX_UPLOAD_FILES
        self.ratio: int = settings.PAAS_MAX_COMPRESSION_RATIO
        self.bytes = _Meter(self.max_mb * MB, self._too_large)
        self.files = _Meter(self.max_files, self._too_many("files"))
        self.dirs = _Meter(self.max_files, self._too_many("folders"))

    def _too_large(self, _used: int) -> PaasError:
        return UploadTooLarge(f"upload is over the {self.max_mb} MB limit")

    def _too_many(self, what: str) -> Callable[[int], PaasError]:
        limit = self.max_files
        return lambda _used: UnsafeUpload(
            f"upload has more than {limit} {what}, the limit is {limit}"
        )

    def raw_archive(self, name: str) -> _Meter:
        """The cap on an archive's own bytes: the content limit plus generous room for
        per-member headers (tar spends up to ~2 KB per member on headers and padding)."""
        cap = self.max_mb * MB + self.max_files * 2048 + MB
        return _Meter(
            cap, lambda _used: UploadTooLarge(f"{name} is over the {self.max_mb} MB limit")
        )

    def expansion(self, name: str, packed: int, label: str) -> _Meter:
        """A meter on bytes unpacked from ``packed`` compressed bytes (zip bomb guard)."""
        cap = max(packed * self.ratio, _RATIO_FLOOR)
        return _Meter(cap, lambda _used: self._bomb(name, label))

    def _bomb(self, name: str, label: str) -> PaasError:
        return UnsafeUpload(
            f"{name}: {label} expands more than {self.ratio} times its packed size (possible zip bomb)"
        )


def _copy(src: IO[bytes], dest: Path, meters: list[_Meter]) -> int:
    """Copy ``src`` into ``dest`` chunk by chunk, counting every byte actually read, so
    a header that lies about sizes cannot get past the limits."""
    written = 0
    with dest.open("wb") as out:
        while chunk := src.read(_CHUNK):
            for meter in meters:
                meter.add(len(chunk))
            out.write(chunk)
            written += len(chunk)
    return written


# --- Staging -----------------------------------------------------------------------


def _stage_dir(root: Path, rel: str, limits: _Limits) -> None:
    if not rel:
        return
    limits.dirs.add(1)
    target = _inside(root, rel)
    try:
        target.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise InvalidInput(f"'{rel}' is both a file and a folder in this upload") from None


def _stage_file(
    root: Path, rel: str, src: IO[bytes], meters: list[_Meter], limits: _Limits
) -> None:
    limits.files.add(1)  # a duplicate member counts twice: conservative, and rare
    target = _inside(root, rel)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise InvalidInput(f"'{rel}' is both a file and a folder in this upload") from None
    if target.is_dir():
        raise InvalidInput(f"'{rel}' is both a file and a folder in this upload")
    _copy(src, target, [limits.bytes, *meters])


def _stage_upload(name: str, src: IO[bytes], root: Path, work: Path, limits: _Limits) -> None:
    kind = _archive_kind(name)
    if kind is None:
        _stage_file(root, _plain_name(name), src, [], limits)
        return
    label = _plain_name(name)
    # Spool first: the parsers need a seekable file and we need the packed size.
    spool = work / f"archive-{uuid.uuid4().hex}"
    packed = _copy(src, spool, [limits.raw_archive(label)])
    with spool.open("rb") as fh:
        _extract(kind, label, fh, root, packed, limits)
    spool.unlink()


def _extract(kind: str, name: str, fh: IO[bytes], root: Path, packed: int, limits: _Limits) -> None:
    try:
        if kind == "zip":
            _extract_zip(name, fh, root, packed, limits)
        else:
            _extract_tar(name, fh, root, packed, limits)
    except PaasError:
        raise
    except Exception as exc:
        # Decompressors report bad data as OSError without an errno (BadGzipFile, bz2);
        # a real I/O error (disk full) has one and is not the user's fault.
        if isinstance(exc, _CORRUPT) or (isinstance(exc, OSError) and exc.errno is None):
            raise InvalidInput(f"{name} is not a valid {kind} archive") from exc
        raise


def _link_error(archive: str, name: str, target: str) -> UnsafeUpload:
    resolved = os.path.normpath(os.path.join(os.path.dirname(name), target))
    if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
        return UnsafeUpload(f"{archive}: symbolic link '{name}' points outside the folder")
    return UnsafeUpload(
        f"{archive}: symbolic link '{name}' is not allowed; archives may not contain links"
    )


def _member_path(archive: str, name: str) -> str:
    return _clean_relpath(name, what=f"{archive}: archive member")


# --- Zip ---------------------------------------------------------------------------


def _zip_kind(info: zipfile.ZipInfo) -> str:
    mode = info.external_attr >> 16
    if info.is_dir() or stat.S_ISDIR(mode):
        return "dir"
    # Windows tools store no Unix mode, and many tools (Python's zipfile among them)
    # store permission bits without a file type: both mean a plain file.
    if stat.S_IFMT(mode) == 0 or stat.S_ISREG(mode):
        return "file"
    return "link" if stat.S_ISLNK(mode) else "special"


# zipfile's own layout of a central directory entry (46 bytes) and its signature.
_ZIP_ENTRY = struct.Struct("<4s4B4HL2L5H2L")
_ZIP_ENTRY_MAGIC = b"PK\x01\x02"


def _precheck_zip_directory(name: str, fh: IO[bytes], limits: _Limits) -> None:
    """Refuse a zip with more entries than an upload may hold *before* ``ZipFile`` loads
    its central directory: it builds an object per entry, so 600 000 empty entries cost
    ~290 MB before any count could be checked. The end record (read with zipfile's own
    reader, so we see exactly the numbers ``ZipFile`` will trust) gives the declared
    count; the directory is then walked header by header, keeping nothing, because
    ``ZipFile`` parses entries until the directory's size is used up, whatever the count
    says."""
    cap = limits.max_files * 2  # as many folders as files may come with them
    end = zipfile._EndRecData(fh)  # type: ignore[attr-defined]
    if not end:
        raise InvalidInput(f"{name} is not a valid zip archive")
    declared, size, location = end[4], end[5], end[9]
    if declared > cap:
        raise _too_many_entries(name, declared, limits)
    start = location - size  # where ZipFile looks: after any data prepended to the zip
    if end[0] == b"PK\x06\x06":  # zip64: its end record and locator sit in between
        start -= 56 + 20
    _walk_zip_directory(name, fh, start, size, cap, limits)
    fh.seek(0)


def _walk_zip_directory(name: str, fh: IO[bytes], start: int, size: int, cap: int,
                        limits: _Limits) -> None:
    if start < 0:
        raise InvalidInput(f"{name} is not a valid zip archive")
    fh.seek(start)
    walked = entries = 0
    while walked < size:
        header = fh.read(_ZIP_ENTRY.size)
        if len(header) != _ZIP_ENTRY.size or header[:4] != _ZIP_ENTRY_MAGIC:
            return  # ZipFile reports the broken directory itself
        entries += 1
        if entries > cap:
            raise _too_many_entries(name, entries, limits, at_least=True)
        fields = _ZIP_ENTRY.unpack(header)
        skip = fields[12] + fields[13] + fields[14]  # name, extra field, comment
        fh.seek(skip, os.SEEK_CUR)
        walked += _ZIP_ENTRY.size + skip


def _too_many_entries(name: str, count: int, limits: _Limits,
                      at_least: bool = False) -> UnsafeUpload:
    many = f"at least {count}" if at_least else str(count)
    return UnsafeUpload(f"{name} has {many} entries; an upload may hold {limits.max_files} "
                        f"files and {limits.max_files} folders")


def _extract_zip(name: str, fh: IO[bytes], root: Path, packed: int, limits: _Limits) -> None:
    _precheck_zip_directory(name, fh, limits)
    with zipfile.ZipFile(fh) as archive:
        infos = archive.infolist()
        _precheck_zip(name, infos, packed, limits)
        overall = limits.expansion(name, packed, "the archive")
        for info in infos:
            _extract_zip_member(name, archive, info, root, overall, limits)


def _precheck_zip(name: str, infos: list[zipfile.ZipInfo], packed: int, limits: _Limits) -> None:
    """Reject on the declared sizes before unpacking anything."""
    files = [info for info in infos if not info.is_dir()]
    limits.files.precheck(len(files))
    declared = sum(info.file_size for info in files)
    limits.bytes.precheck(declared)
    limits.expansion(name, packed, "the archive").precheck(declared)


def _extract_zip_member(
    name: str,
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    root: Path,
    overall: _Meter,
    limits: _Limits,
) -> None:
    rel = _member_path(name, info.filename)
    kind = _zip_kind(info)
    if kind == "dir":
        _stage_dir(root, rel, limits)
        return
    if kind == "link":
        with archive.open(info) as src:  # the link target is the data; never read it all
            target = src.read(4096).decode("utf-8", "replace")
        raise _link_error(name, info.filename, target)
    if kind == "special":
        raise UnsafeUpload(f"{name}: member '{info.filename}' is not a regular file or folder")
    if info.flag_bits & 0x1:
        raise InvalidInput(
            f"{name}: member '{info.filename}' is encrypted; encrypted archives are not supported"
        )
    if not rel:
        raise UnsafeUpload(f"{name}: archive member '{info.filename}' has no name")
    member = limits.expansion(name, info.compress_size, f"member '{info.filename}'")
    member.precheck(info.file_size)
    with archive.open(info) as src:
        _stage_file(root, rel, src, [overall, member, _declared(name, info)], limits)


def _declared(name: str, info: zipfile.ZipInfo) -> _Meter:
    """More bytes than the header declares means a forged header: stop right there."""
    return _Meter(
        info.file_size,
        lambda _used: UnsafeUpload(
            f"{name}: member '{info.filename}' holds more data than its header declares"
        ),
    )


# --- Tar ---------------------------------------------------------------------------


def _extract_tar(name: str, fh: IO[bytes], root: Path, packed: int, limits: _Limits) -> None:
    # Compressed tars declare no packed size per member: the ratio is the whole archive's.
    overall = limits.expansion(name, packed, "the archive")
    with tarfile.open(fileobj=fh, mode="r:*") as archive:
        for member in archive:
            _extract_tar_member(name, archive, member, root, overall, limits)


def _extract_tar_member(
    name: str,
    archive: tarfile.TarFile,
    member: tarfile.TarInfo,
    root: Path,
    overall: _Meter,
    limits: _Limits,
) -> None:
    rel = _member_path(name, member.name)
    _check_tar_type(name, member)
    if member.isdir():
        _stage_dir(root, rel, limits)
        return
    if not rel:
        raise UnsafeUpload(f"{name}: archive member '{member.name}' has no name")
    limits.bytes.precheck(member.size)
    src = archive.extractfile(member)
    if src is None:  # cannot happen for a regular member; keeps the type checker honest
        raise InvalidInput(f"{name} is not a valid tar archive")
    with src:
        _stage_file(root, rel, src, [overall], limits)


def _check_tar_type(name: str, member: tarfile.TarInfo) -> None:
    if member.isreg() or member.isdir():
        return
    if member.issym():
        raise _link_error(name, member.name, member.linkname)
    if member.islnk():
        raise UnsafeUpload(
            f"{name}: hard link '{member.name}' is not allowed; archives may not contain links"
        )
    label = (
        "device"
        if member.isdev() and not member.isfifo()
        else "FIFO"
        if member.isfifo()
        else "special file"
    )
    raise UnsafeUpload(
        f"{name}: member '{member.name}' is a {label}; only files and folders are allowed"
    )


# --- Commit ------------------------------------------------------------------------


LOCK_PREFIXES = (".lock-", ".push-")


@contextmanager
def _flock(name: str, *, shared: bool = False) -> Iterator[None]:
    """An advisory lock across processes. Lock files sit beside the stores, not in them,
    so clearing a store never removes a lock someone holds; ``lock_files_prune`` removes
    those of slots that no longer exist."""
    base = Path(settings.PAAS_CONTENT_DIR)
    base.mkdir(parents=True, exist_ok=True)
    with open(base / name, "ab") as lock:  # "a": create, never truncate
        fcntl.flock(lock, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield  # closing the file releases the lock


def _slot_lock(slot_id: int, *, shared: bool = False) -> AbstractContextManager[None]:
    """Serialise writers of one slot's store (readers share)."""
    return _flock(f".lock-{slot_id}", shared=shared)


def push_lock(slot_id: int) -> AbstractContextManager[None]:
    """Serialise pushes into one slot's container across processes (web and worker),
    so a push that read older content can never land after a newer one. A lock of its
    own: a push reads the store under the store lock while holding this one."""
    return _flock(f".push-{slot_id}")


def lock_files_prune(*, keep: set[int], min_age: float = 3600.0) -> int:
    """Remove the lock files and stores of slots not in ``keep`` (deleted slots). A slot
    created after ``keep`` was read has a higher id than all of it, and its files are
    new: those are left alone."""
    base = Path(settings.PAAS_CONTENT_DIR)
    if not base.is_dir():
        return 0
    newest, now, removed = max(keep, default=0), time.time(), 0
    for entry in base.iterdir():
        prefix = next((p for p in LOCK_PREFIXES if entry.name.startswith(p)), "")
        slot_id = entry.name[len(prefix):]
        if not slot_id.isdigit() or int(slot_id) in keep:
            continue
        if int(slot_id) < newest or now - entry.lstat().st_mtime > min_age:
            if prefix:
                entry.unlink(missing_ok=True)
            else:
                shutil.rmtree(entry, ignore_errors=True)
            removed += 1
    return removed


def _walk(root: Path) -> tuple[dict[str, int], list[str]]:
    """Regular files (relative posix path -> size) and folders under ``root``, parents
    before children, sorted. Anything else on disk (it should never be there) is skipped."""
    files: dict[str, int] = {}
    dirs: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        base = Path(dirpath)
        dirs.extend((base / d).relative_to(root).as_posix() for d in dirnames)
        for filename in sorted(filenames):
            info = (base / filename).lstat()
            if stat.S_ISREG(info.st_mode):
                files[(base / filename).relative_to(root).as_posix()] = info.st_size
    return files, dirs


def _check_conflicts(root: Path, files: dict[str, int], dirs: list[str]) -> None:
    for rel in dirs:
        target = root / rel
        if target.exists() and not target.is_dir():
            raise InvalidInput(f"'{rel}' is a file in your content; a folder cannot replace it")
    for rel in files:
        if (root / rel).is_dir():
            raise InvalidInput(f"'{rel}' is a folder in your content; a file cannot replace it")


def _check_totals(root: Path, staged: dict[str, int]) -> None:
    """The exact limits: the store as it will be after this upload, replacements counted once."""
    merged = {**_walk(root)[0], **staged}
    total = sum(merged.values())
    limit_mb = settings.PAAS_MAX_UPLOAD_MB
    if total > limit_mb * MB:
        raise UploadTooLarge(f"upload would make {total / MB:.1f} MB, the limit is {limit_mb} MB")
    limit_files = settings.PAAS_MAX_UPLOAD_FILES
    if len(merged) > limit_files:
        raise UnsafeUpload(f"upload would make {len(merged)} files, the limit is {limit_files}")


def _commit(tree: Path, root: Path) -> list[str]:
    """Move the staged tree into the store. Everything that can fail is checked first;
    the moves are renames within one file system."""
    files, dirs = _walk(tree)
    _check_conflicts(root, files, dirs)
    _check_totals(root, files)
    root.mkdir(parents=True, exist_ok=True)
    for rel in dirs:
        _inside(root, rel).mkdir(exist_ok=True)
    for rel in files:
        os.replace(tree / rel, _inside(root, rel))
    return sorted(files)


# --- Public API --------------------------------------------------------------------


@contextmanager
def _field(name: str) -> Iterator[None]:
    """Name the request field a too-long path came from (the API's ``fields``)."""
    try:
        yield
    except PathTooLong as exc:
        exc.fields = exc.fields or {name: [exc.detail]}
        raise


def content_add(*, slot_id: int, uploads: Sequence[tuple[str, IO[bytes]]], path: str = "",
                guard: Callable[[], None] | None = None) -> list[str]:
    """Store uploaded files under the folder ``path`` of the slot's store, extracting
    .zip/.tar/.tar.gz/.tgz archives there; other files keep only their base name.
    Each file object is read from its current position. All or nothing: on any error the
    store is left as it was. ``guard`` runs under the store lock just before the commit
    and may raise to refuse it (the slot is no longer the uploader's: a release clears
    the store under the same lock, so nothing lands after it). Returns the stored paths
    (relative, posix, sorted)."""
    root = content_dir(slot_id)
    with _field("path"):
        folder = _clean_relpath(path, what="target folder", scope="content folder")
        _inside(root, folder)
    if not uploads:
        raise InvalidInput("no files were uploaded")
    base = Path(settings.PAAS_CONTENT_DIR)
    base.mkdir(parents=True, exist_ok=True)
    # Staging sits beside the stores so the final moves are same-file-system renames.
    work = base / f".staging-{uuid.uuid4().hex}"
    try:
        tree = work / "tree"
        (tree / folder).mkdir(parents=True)
        limits = _Limits()
        with _field("file"):
            for name, src in uploads:
                _stage_upload(name, src, tree / folder, work, limits)
        with _field("file"), _slot_lock(slot_id):
            if guard is not None:
                guard()
            return _commit(tree, root)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def content_list(*, slot_id: int) -> list[dict]:
    """``[{"path": "css/site.css", "size": 123}, ...]`` sorted by path."""
    root = content_dir(slot_id)
    with _slot_lock(slot_id, shared=True):
        files = _walk(root)[0]
    return [{"path": rel, "size": size} for rel, size in sorted(files.items())]


def content_size(*, slot_id: int) -> int:
    """Total bytes of the slot's stored files."""
    return sum(entry["size"] for entry in content_list(slot_id=slot_id))


def content_delete(*, slot_id: int, path: str) -> None:
    """Remove one file, and any folders it leaves empty."""
    root = content_dir(slot_id)
    with _field("path"):
        rel = _clean_relpath(path, what="path", scope="content folder")
        target = _inside(root, rel)
    if not rel:
        raise InvalidInput("a file path is required")
    with _slot_lock(slot_id):
        if target.is_dir() and not target.is_symlink():
            raise InvalidInput(f"'{rel}' is a folder; delete the files in it instead")
        if not target.is_file():
            raise NotFound(f"no file '{rel}' in your content")
        target.unlink()
        _remove_empty_parents(root, target)


def _remove_empty_parents(root: Path, target: Path) -> None:
    for parent in target.parents:
        if parent == root:
            return
        try:
            parent.rmdir()
        except OSError:  # not empty: a sibling keeps it
            return


def content_clear(*, slot_id: int) -> None:
    """Delete the slot's whole store; nothing to do when there is none."""
    root = content_dir(slot_id)
    with _slot_lock(slot_id):
        if root.exists():
            shutil.rmtree(root)


def content_is_empty(*, slot_id: int) -> bool:
    """True when the slot has no stored file: one stat when there is no store (the usual
    case for an idle slot), one directory read otherwise; never a walk."""
    try:
        with os.scandir(content_dir(slot_id)) as entries:
            return next(entries, None) is None
    except FileNotFoundError:
        return True


def content_tar(*, slot_id: int, uid: int = 1000, gid: int = 1000) -> bytes:
    """An uncompressed tar of the store (relative names, folders included, owned by
    ``uid``/``gid``, modes 0644/0755, no links), for Docker's ``put_archive``."""
    root = content_dir(slot_id)
    buffer = io.BytesIO()
    with _slot_lock(slot_id, shared=True), tarfile.open(fileobj=buffer, mode="w") as archive:
        files, dirs = _walk(root)
        for rel in sorted([*dirs, *files]):  # sorted: every folder precedes its contents
            _add_to_tar(archive, root / rel, rel, rel in files, uid, gid)
    return buffer.getvalue()


def _add_to_tar(
    archive: tarfile.TarFile, source: Path, rel: str, is_file: bool, uid: int, gid: int
) -> None:
    info = tarfile.TarInfo(rel)
    info.uid, info.gid = uid, gid
    info.mtime = int(source.stat().st_mtime)
    if not is_file:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        archive.addfile(info)
        return
    info.mode = 0o644
    with source.open("rb") as fh:
        info.size = os.fstat(fh.fileno()).st_size  # size of what we read, not of a stale stat
        archive.addfile(info, fh)

"""The per-slot content store: uploads, safe extraction, atomicity, the tar for Docker."""

import io
import stat
import struct
import tarfile
import threading
import zipfile
from pathlib import Path
from typing import Literal

import pytest

from pools.content import (
    content_add,
    content_clear,
    content_delete,
    content_dir,
    content_list,
    content_size,
    content_tar,
)
from pools.errors import InvalidInput, NotFound, UnsafeUpload, UploadTooLarge

SLOT = 7
MB = 1024 * 1024


@pytest.fixture(autouse=True)
def store(settings, tmp_path) -> Path:
    settings.PAAS_CONTENT_DIR = tmp_path / "content"
    settings.PAAS_MAX_UPLOAD_MB = 50
    settings.PAAS_MAX_UPLOAD_FILES = 2000
    settings.PAAS_MAX_COMPRESSION_RATIO = 100
    return settings.PAAS_CONTENT_DIR


# --- Builders ----------------------------------------------------------------------


def upload(name: str, data: bytes) -> tuple[str, io.BytesIO]:
    return name, io.BytesIO(data)


def add(*uploads: tuple[str, io.BytesIO], path: str = "") -> list[str]:
    return content_add(slot_id=SLOT, uploads=list(uploads), path=path)


def make_zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name), data, zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def zip_symlink(name: str, target: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo(name)
        info.create_system = 3  # Unix, so the mode bits below mean something
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, target)
    return buffer.getvalue()


def tar_member(name: str, data: bytes = b"", **attrs: object) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, data


def make_tar(*members: tuple[tarfile.TarInfo, bytes], mode: Literal["w", "w:gz"] = "w") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buffer.getvalue()


def listing() -> list[dict]:
    return content_list(slot_id=SLOT)


def paths() -> list[str]:
    return [entry["path"] for entry in listing()]


@pytest.fixture
def seeded(store: Path) -> list[dict]:
    """A store with some content, to prove a rejected upload leaves it untouched."""
    add(upload("index.html", b"<h1>hi</h1>"), upload("site.css", b"body{}"), path="old")
    return listing()


def assert_rejected(store: Path, before: list[dict], error: type[Exception], *uploads, path=""):
    with pytest.raises(error) as caught:
        add(*uploads, path=path)
    assert listing() == before
    assert not list(store.glob(".staging-*"))
    return str(caught.value)


# --- Plain files -------------------------------------------------------------------


def test_plain_file_is_stored():
    assert add(upload("index.html", b"<h1>hi</h1>")) == ["index.html"]
    assert (content_dir(SLOT) / "index.html").read_bytes() == b"<h1>hi</h1>"


def test_several_files_sorted():
    stored = add(upload("b.txt", b"b"), upload("a.txt", b"a"), upload("c.txt", b"c"))
    assert stored == ["a.txt", "b.txt", "c.txt"]


def test_target_path_is_normalised():
    assert add(upload("app.js", b"1"), path="static//js/./") == ["static/js/app.js"]


def test_client_folders_in_plain_names_are_dropped():
    assert add(upload("C:\\Users\\me\\index.html", b"x"), upload("a/b/c.txt", b"y")) == [
        "c.txt",
        "index.html",
    ]


def test_replacing_a_file():
    add(upload("index.html", b"old"))
    add(upload("index.html", b"newer"))
    assert listing() == [{"path": "index.html", "size": 5}]


def test_list_and_size():
    add(upload("a.txt", b"123"), upload("b.txt", b"45"), path="docs")
    assert listing() == [{"path": "docs/a.txt", "size": 3}, {"path": "docs/b.txt", "size": 2}]
    assert content_size(slot_id=SLOT) == 5


def test_list_of_missing_store_is_empty():
    assert content_list(slot_id=99) == []
    assert content_size(slot_id=99) == 0


def test_slots_are_separate():
    add(upload("a.txt", b"1"))
    content_add(slot_id=8, uploads=[upload("b.txt", b"2")])
    assert paths() == ["a.txt"]
    assert [e["path"] for e in content_list(slot_id=8)] == ["b.txt"]


def test_empty_upload_list_rejected():
    with pytest.raises(InvalidInput):
        add()


# --- Delete and clear ---------------------------------------------------------------


def test_delete_removes_file_and_empty_parents():
    add(upload("a.css", b"1"), path="static/css")
    add(upload("index.html", b"2"))
    content_delete(slot_id=SLOT, path="static/css/a.css")
    assert paths() == ["index.html"]
    assert not (content_dir(SLOT) / "static").exists()
    assert content_dir(SLOT).is_dir()


def test_delete_keeps_non_empty_parent():
    add(upload("a.css", b"1"), upload("b.css", b"2"), path="css")
    content_delete(slot_id=SLOT, path="css/a.css")
    assert paths() == ["css/b.css"]


def test_delete_missing_file():
    with pytest.raises(NotFound):
        content_delete(slot_id=SLOT, path="nope.html")


@pytest.mark.parametrize("bad", ["../x", "a/../../x", "/etc/passwd", "..\\x", "a\x00b"])
def test_delete_traversal_rejected(store, tmp_path, bad):
    (tmp_path / "x").write_text("outside")
    add(upload("keep.txt", b"1"))
    with pytest.raises(UnsafeUpload):
        content_delete(slot_id=SLOT, path=bad)
    assert (tmp_path / "x").exists()
    assert paths() == ["keep.txt"]


def test_delete_folder_rejected():
    add(upload("a.txt", b"1"), path="dir")
    with pytest.raises(InvalidInput):
        content_delete(slot_id=SLOT, path="dir")
    assert paths() == ["dir/a.txt"]


def test_clear_is_idempotent():
    add(upload("a.txt", b"1"), path="x/y")
    content_clear(slot_id=SLOT)
    assert listing() == []
    assert not content_dir(SLOT).exists()
    content_clear(slot_id=SLOT)


# --- Tar for the container ---------------------------------------------------------


def test_tar_round_trip():
    add(upload("index.html", b"<h1>hi</h1>"))
    add(upload("site.css", b"body{}"), path="static/css")
    data = content_tar(slot_id=SLOT, uid=1001, gid=1002)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        members = {m.name: m for m in archive.getmembers()}
        assert sorted(members) == ["index.html", "static", "static/css", "static/css/site.css"]
        assert all(m.uid == 1001 and m.gid == 1002 for m in members.values())
        assert members["static"].isdir() and members["static"].mode == 0o755
        assert members["index.html"].isreg() and members["index.html"].mode == 0o644
        extracted = archive.extractfile(members["static/css/site.css"])
        assert extracted is not None and extracted.read() == b"body{}"


def test_tar_of_empty_store_is_valid():
    with tarfile.open(fileobj=io.BytesIO(content_tar(slot_id=SLOT)), mode="r:") as archive:
        assert archive.getmembers() == []


# --- Archives ----------------------------------------------------------------------

SITE = {
    "index.html": b"<h1>site</h1>",
    "css/": b"",
    "css/site.css": b"body{}",
    "js/lib/app.js": b"console.log(1)",
}
SITE_FILES = ["css/site.css", "index.html", "js/lib/app.js"]


def test_zip_extraction():
    assert add(upload("site.zip", make_zip(SITE))) == SITE_FILES
    assert (content_dir(SLOT) / "js/lib/app.js").read_bytes() == b"console.log(1)"


def test_zip_extraction_into_target_path():
    stored = add(upload("SITE.ZIP", make_zip(SITE)), path="www")
    assert stored == [f"www/{p}" for p in SITE_FILES]


@pytest.mark.parametrize(
    ("name", "mode"), [("site.tar.gz", "w:gz"), ("site.tgz", "w:gz"), ("site.tar", "w")]
)
def test_tar_extraction(name, mode):
    members = [tar_member("css", type=tarfile.DIRTYPE)]
    members += [tar_member(n, d) for n, d in SITE.items() if not n.endswith("/")]
    assert add(upload(name, make_tar(*members, mode=mode))) == SITE_FILES


def test_tar_made_with_dot_prefix():
    """`tar czf site.tgz .` names members './', './index.html'."""
    members = [tar_member("./", type=tarfile.DIRTYPE), tar_member("./index.html", b"x")]
    assert add(upload("site.tgz", make_tar(*members, mode="w:gz"))) == ["index.html"]


def test_archive_replaces_existing_files(seeded):
    add(upload("site.zip", make_zip({"old/index.html": b"new"})))
    assert {e["path"]: e["size"] for e in listing()}["old/index.html"] == 3


def test_empty_folders_are_kept_and_tarred():
    add(upload("site.tar", make_tar(tar_member("uploads", type=tarfile.DIRTYPE))))
    assert (content_dir(SLOT) / "uploads").is_dir()
    with tarfile.open(fileobj=io.BytesIO(content_tar(slot_id=SLOT))) as archive:
        assert archive.getnames() == ["uploads"]


# --- Bad input: the right error, and nothing written --------------------------------


def test_zip_slip(store, seeded):
    message = assert_rejected(
        store, seeded, UnsafeUpload, upload("site.zip", make_zip({"../evil": b"x"}))
    )
    assert "archive member '../evil' escapes the target folder" in message
    assert not (store / "evil").exists()


def test_zip_slip_after_good_members(store, seeded):
    bad = make_zip({"ok/a.txt": b"fine", "ok/b.txt": b"fine", "ok/../../../evil": b"x"})
    assert_rejected(store, seeded, UnsafeUpload, upload("site.zip", bad))


def test_tar_slip_with_backslashes(store, seeded):
    bad = make_tar(tar_member("..\\..\\evil", b"x"))
    assert_rejected(store, seeded, UnsafeUpload, upload("site.tar", bad))


@pytest.mark.parametrize("name", ["/etc/x", "C:/Windows/x"])
def test_absolute_member(store, seeded, name):
    message = assert_rejected(
        store, seeded, UnsafeUpload, upload("site.zip", make_zip({name: b"x"}))
    )
    assert "absolute path" in message


def test_absolute_member_in_tar(store, seeded):
    assert_rejected(
        store,
        seeded,
        UnsafeUpload,
        upload("site.tar.gz", make_tar(tar_member("/etc/x", b"x"), mode="w:gz")),
    )


def test_zip_symlink_escaping(store, seeded):
    message = assert_rejected(
        store, seeded, UnsafeUpload, upload("site.zip", zip_symlink("a", "../../etc/passwd"))
    )
    assert message == "site.zip: symbolic link 'a' points outside the folder"


def test_zip_symlink_inside_root_also_rejected(store, seeded):
    message = assert_rejected(
        store, seeded, UnsafeUpload, upload("site.zip", zip_symlink("a", "index.html"))
    )
    assert "links" in message


@pytest.mark.parametrize("target", ["/etc/passwd", "../x", "index.html", "sub/../index.html"])
def test_tar_symlink_rejected(store, seeded, target):
    link = tar_member("a", type=tarfile.SYMTYPE, linkname=target)
    assert_rejected(
        store,
        seeded,
        UnsafeUpload,
        upload("site.tar", make_tar(tar_member("index.html", b"x"), link)),
    )


def test_tar_hard_link_rejected(store, seeded):
    link = tar_member("b", type=tarfile.LNKTYPE, linkname="index.html")
    message = assert_rejected(
        store,
        seeded,
        UnsafeUpload,
        upload("site.tar", make_tar(tar_member("index.html", b"x"), link)),
    )
    assert "hard link 'b'" in message


@pytest.mark.parametrize("kind", [tarfile.FIFOTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE])
def test_tar_device_or_fifo_rejected(store, seeded, kind):
    special = tar_member("dev", type=kind, devmajor=1, devminor=3)
    assert_rejected(store, seeded, UnsafeUpload, upload("site.tar", make_tar(special)))


def test_zip_bomb(store, seeded, settings):
    settings.PAAS_MAX_UPLOAD_MB = 100  # the ratio, not the size, must catch it
    bomb = make_zip({"zeros.bin": bytes(20 * MB)})
    message = assert_rejected(store, seeded, UnsafeUpload, upload("bomb.zip", bomb))
    assert "zip bomb" in message


def test_zip_bomb_spread_over_small_members(store, seeded, settings):
    """No member passes the per-member floor, but the archive as a whole does."""
    settings.PAAS_MAX_UPLOAD_MB = 100
    bomb = make_zip({f"z{i}.bin": bytes(MB - 1) for i in range(6)})
    assert_rejected(store, seeded, UnsafeUpload, upload("bomb.zip", bomb))


def test_tar_gz_bomb_caught_while_counting(store, seeded, settings):
    """A .tar.gz declares no packed size per member: only counting can catch it."""
    settings.PAAS_MAX_UPLOAD_MB = 100
    bomb = make_tar(tar_member("zeros.bin", bytes(8 * MB)), mode="w:gz")
    message = assert_rejected(store, seeded, UnsafeUpload, upload("bomb.tar.gz", bomb))
    assert "zip bomb" in message


def _patch_sizes(data: bytes, size: int) -> bytes:
    """Forge the uncompressed size in the local header and the central directory."""
    raw = bytearray(data)
    local = raw.index(b"PK\x03\x04")
    struct.pack_into("<I", raw, local + 22, size)
    central = raw.index(b"PK\x01\x02")
    struct.pack_into("<I", raw, central + 24, size)
    return bytes(raw)


def test_lying_zip_header(store, seeded, settings):
    settings.PAAS_MAX_UPLOAD_MB = 1
    # Declares 10 bytes; 2 MB inside: over the size limit, and not the declared size.
    liar = _patch_sizes(make_zip({"small.txt": b"ab" * MB}), 10)
    assert_rejected(store, seeded, InvalidInput, upload("liar.zip", liar))
    assert not (store / str(SLOT) / "small.txt").exists()


def test_oversize_plain_upload(store, seeded, settings):
    settings.PAAS_MAX_UPLOAD_MB = 1
    assert_rejected(store, seeded, UploadTooLarge, upload("big.bin", bytes(2 * MB)))


def test_oversize_counts_existing_store(store, seeded, settings):
    settings.PAAS_MAX_UPLOAD_MB = 1
    add(upload("a.bin", bytes(600 * 1024)))
    before = listing()
    message = assert_rejected(store, before, UploadTooLarge, upload("b.bin", bytes(600 * 1024)))
    assert message.startswith("upload would make 1.2 MB, the limit is 1 MB")


def test_replacing_does_not_count_twice(settings):
    settings.PAAS_MAX_UPLOAD_MB = 1
    add(upload("a.bin", bytes(600 * 1024)))
    add(upload("a.bin", bytes(700 * 1024)))
    assert content_size(slot_id=SLOT) == 700 * 1024


def test_oversize_archive(store, seeded, settings):
    settings.PAAS_MAX_UPLOAD_MB = 1
    archive = make_tar(tar_member("big.bin", bytes(2 * MB)), mode="w:gz")
    settings.PAAS_MAX_COMPRESSION_RATIO = 10_000
    assert_rejected(store, seeded, UploadTooLarge, upload("site.tgz", archive))


def test_too_many_files(store, seeded, settings):
    settings.PAAS_MAX_UPLOAD_FILES = 5
    many = make_zip({f"f{i}.txt": b"x" for i in range(6)})
    assert_rejected(store, seeded, UnsafeUpload, upload("many.zip", many))


def test_too_many_files_counts_existing_store(store, seeded, settings):
    settings.PAAS_MAX_UPLOAD_FILES = 3
    assert_rejected(store, seeded, UnsafeUpload, upload("a.txt", b"1"), upload("b.txt", b"2"))


@pytest.mark.parametrize("name", ["site.zip", "site.tar.gz", "site.tar"])
def test_corrupt_archive(store, seeded, name):
    message = assert_rejected(
        store, seeded, InvalidInput, upload(name, b"this is not an archive" * 50)
    )
    assert "is not a valid" in message


def test_truncated_zip(store, seeded):
    data = make_zip({"a.txt": b"hello" * 1000})
    assert_rejected(store, seeded, InvalidInput, upload("site.zip", data[: len(data) // 2]))


@pytest.mark.parametrize("bad", ["..", "../x", "a/../../x", "/abs", "x\x00y"])
def test_target_path_traversal(store, seeded, bad):
    assert_rejected(store, seeded, UnsafeUpload, upload("a.txt", b"1"), path=bad)


@pytest.mark.parametrize("name", ["..", ".", "", "dir/", "a\\.."])
def test_bad_plain_file_name(store, seeded, name):
    assert_rejected(store, seeded, InvalidInput, upload(name, b"1"))


def test_bad_file_rejects_whole_upload(store, seeded):
    """The good files of a rejected upload are not written either."""
    assert_rejected(
        store,
        seeded,
        UnsafeUpload,
        upload("good.txt", b"1"),
        upload("bad.zip", make_zip({"../x": b"1"})),
    )


def test_file_cannot_replace_folder(store, seeded):
    message = assert_rejected(store, seeded, InvalidInput, upload("old", b"1"))
    assert "folder" in message


def test_folder_cannot_replace_file(store, seeded):
    assert_rejected(
        store, seeded, InvalidInput, upload("site.zip", make_zip({"old/index.html/x": b"1"}))
    )


def test_file_and_folder_of_same_name_in_one_upload(store, seeded):
    assert_rejected(
        store, seeded, InvalidInput, upload("a", b"1"), upload("s.zip", make_zip({"a/b": b"2"}))
    )


def test_bad_slot_id():
    with pytest.raises(InvalidInput):
        content_dir("../1")  # type: ignore[arg-type]


# --- Concurrency -------------------------------------------------------------------


def test_concurrent_uploads_to_one_slot():
    errors: list[Exception] = []

    def put(i: int) -> None:
        try:
            add(upload(f"f{i}.txt", bytes([i]) * 10_000))
        except Exception as exc:  # surfaced below: a thread's exception is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=put, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert paths() == [f"f{i}.txt" for i in range(8)]
    assert all(entry["size"] == 10_000 for entry in listing())

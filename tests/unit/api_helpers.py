"""Helpers for the API tests: the personas' password and upload/archive builders."""

from __future__ import annotations

import io
import tarfile
import zipfile

from django.core.files.uploadedfile import SimpleUploadedFile

from deployments.models import Deployment
from pools import content
from pools.models import PoolContainer
from tests.fakes import FakeEngine

PASSWORD = "pw-Secret-123"  # tests/conftest.py's make_user default


def upload(name: str, data: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


def zip_of(entries: dict[str, str] | dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def tar_of(members: list[tarfile.TarInfo], data: dict[str, bytes] | None = None,
           mode: str = "w") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:  # type: ignore[call-overload]
        for member in members:
            payload = (data or {}).get(member.name)
            if payload is not None:
                member.size = len(payload)
                archive.addfile(member, io.BytesIO(payload))
            else:
                archive.addfile(member)
    return buffer.getvalue()


def tar_member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type = kind
    member.linkname = linkname
    return member


def snapshot(fake_engine: FakeEngine) -> tuple:
    """Everything a refused request must leave alone: slots, deployments, stores,
    container files and signals."""
    slots = list(PoolContainer.objects.order_by("pk").values_list(
        "pk", "status", "owner_id", "generation", "container_id"))
    deployments = list(Deployment.objects.order_by("pk").values_list("pk", "status", "slot_id"))
    stores = {slot[0]: content.content_list(slot_id=slot[0]) for slot in slots}
    files = {cid: dict(f) for cid, f in fake_engine.files.items()}
    return slots, deployments, stores, files, list(fake_engine.signals)

"""Build the four runtime images from the Dockerfiles in ``pools/images``.

Each image is tagged ``paas/<runtime>:<hash12>`` where the hash covers the runtime's own
directory, the shared ``common/`` directory and the base recipe, so the platform can
compute the tag it should run without asking Docker (``image_tag``) and an unchanged
image is never rebuilt. The base is ``debian:bookworm-slim`` when a registry answers,
otherwise a ``debootstrap --variant=minbase`` rootfs imported into the engine.

Only the engine package (``pools/engine/``) talks to Docker; this module just decides what to
build and runs debootstrap/tar on the host.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from pools.errors import EngineError

RUNTIMES = ("nginx", "apache", "python", "node")
BASE_TAG = "paas/base:bookworm"
BASE_PULL_REF = "debian:bookworm-slim"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# Part of every runtime hash: changing the base recipe must change every runtime tag.
BASE_IDENTITY = f"{BASE_TAG} from {BASE_PULL_REF} or debootstrap minbase {SUITE} (v1)"

# Written into the debootstrapped rootfs: no docs/man pages/locales and no recommends,
# and apt caches cleaned after every install, as in Debian's own slim image.
_DPKG_NODOC = """\
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
"""
_APT_SLIM = """\
APT::Install-Recommends "false";
APT::Install-Suggests "false";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";
"""

Progress = Callable[[str], None]


class ImageEngine(Protocol):
    """The part of ``pools.engine.Engine`` the builder needs."""

    def image_exists(self, tag: str) -> bool: ...
    def pull_image(self, ref: str, tag: str) -> bool: ...
    def import_image(self, tar_path: Path, tag: str) -> None: ...
    def build_image(
        self, context_dir: Path, tag: str, buildargs: dict[str, str], progress: Progress,
    ) -> None: ...
    def tag_image(self, source: str, tag: str) -> None: ...
    def image_tags(self, repository: str) -> list[str]: ...
    def untag_image(self, tag: str) -> None: ...


def images_dir() -> Path:
    return Path(__file__).resolve().parent / "images"


def _tree_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def source_hash(runtime: str) -> str:
    """sha256 over the runtime's directory, ``common/`` and the base identity: names,
    contents and the executable bit (it changes what the image does)."""
    digest = hashlib.sha256(BASE_IDENTITY.encode())
    for folder in (images_dir() / runtime, images_dir() / "common"):
        for path in _tree_files(folder):
            relative = path.relative_to(images_dir()).as_posix()
            executable = "x" if path.stat().st_mode & 0o111 else "-"
            digest.update(f"\0{relative}\0{executable}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def image_tag(runtime: str) -> str:
    """The tag the current sources produce (whether or not it has been built)."""
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; known: {', '.join(RUNTIMES)}")
    return f"paas/{runtime}:{source_hash(runtime)[:12]}"


def build_images(
    engine: ImageEngine,
    *,
    offline: bool = False,
    runtimes: list[str] | None = None,
    progress: Progress = print,
    prune: bool = True,
) -> dict[str, str]:
    """Build every missing runtime image (all four unless ``runtimes`` says otherwise);
    returns runtime name → image tag. ``prune=False`` leaves other tags alone: test runs
    share the daemon with installations (and checkouts) whose sources differ."""
    wanted = list(runtimes) if runtimes else list(RUNTIMES)
    tags = {name: image_tag(name) for name in wanted}
    missing = []
    for name, tag in tags.items():
        if engine.image_exists(tag):
            progress(f"{name}: {tag} up to date")
        else:
            missing.append(name)
    if missing:
        ensure_base(engine, offline=offline, progress=progress)
    for name in missing:
        _build_runtime(engine, name, tags[name], progress)
    for name, tag in tags.items():
        # A stable alias for operators (`docker run paas/nginx`); the platform uses the hash.
        engine.tag_image(tag, f"paas/{name}:latest")
        if prune:
            _prune_old_tags(engine, name, keep={tag, f"paas/{name}:latest"}, progress=progress)
    return tags


class ImageSender(Protocol):
    def image_send(self, tag: str, progress: Progress) -> list[str]: ...


def images_to_nodes(engine: ImageSender, *, tags: list[str], progress: Progress = print,
                    ) -> dict[str, list[str]]:
    """Send the built images to every engine that runs containers and lacks them (a
    swarm's pool nodes; nothing on one engine): tag → the nodes that received it."""
    return {tag: engine.image_send(tag, progress) for tag in tags}


def _prune_old_tags(engine: ImageEngine, runtime: str, *, keep: set[str],
                    progress: Progress) -> None:
    """Drop the tags of earlier sources, or every upgrade leaves an image behind."""
    for old in engine.image_tags(f"paas/{runtime}"):
        if old not in keep:
            engine.untag_image(old)
            progress(f"{runtime}: removed the outdated image {old}")


def ensure_base(engine: ImageEngine, *, offline: bool, progress: Progress) -> None:
    if engine.image_exists(BASE_TAG):
        progress(f"base: {BASE_TAG} up to date")
        return
    if not offline:
        progress(f"base: pulling {BASE_PULL_REF} …")
        if engine.pull_image(BASE_PULL_REF, BASE_TAG):
            progress(f"base: {BASE_PULL_REF} tagged {BASE_TAG}")
            return
        progress("base: no registry answered; building the base with debootstrap instead")
    _debootstrap_base(engine, progress)


def _debootstrap_base(engine: ImageEngine, progress: Progress) -> None:
    debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    if not Path(debootstrap).exists():
        raise EngineError(
            "no registry answered and debootstrap is missing: `apt-get install -y debootstrap`"
        )
    started = time.monotonic()
    progress(f"base: debootstrap {SUITE} from {MIRROR} …")
    with tempfile.TemporaryDirectory(prefix="paas-base-") as work:
        rootfs = Path(work) / "rootfs"
        _run([debootstrap, "--variant=minbase", SUITE, str(rootfs), MIRROR], "debootstrap")
        _slim_rootfs(rootfs)
        tarball = Path(work) / "rootfs.tar"
        progress(f"base: importing the rootfs as {BASE_TAG} …")
        # Numeric owners: the host's user names must not leak into the image's ids.
        # /dev, /proc and /sys contents belong to the runtime, not the image.
        _run(["tar", "-C", str(rootfs), "--numeric-owner", "--exclude=./dev/*",
              "--exclude=./proc/*", "--exclude=./sys/*", "-cf", str(tarball), "."], "tar")
        engine.import_image(tarball, BASE_TAG)
    progress(f"base: done in {time.monotonic() - started:.0f} s")


def _slim_rootfs(rootfs: Path) -> None:
    """Drop apt lists/caches and docs, and keep later installs just as slim."""
    (rootfs / "etc/dpkg/dpkg.cfg.d/paas-nodoc").write_text(_DPKG_NODOC)
    (rootfs / "etc/apt/apt.conf.d/paas-slim").write_text(_APT_SLIM)
    for pattern in ("var/lib/apt/lists/*", "var/cache/apt/*.bin", "var/cache/apt/archives/*.deb",
                    "usr/share/doc/*/*", "usr/share/man/*", "usr/share/info/*",
                    "usr/share/locale/*", "var/log/*.log", "var/log/apt/*"):
        for path in rootfs.glob(pattern):
            if path.name in ("copyright", "locale.alias", "partial", "auxfiles"):
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


def _build_runtime(engine: ImageEngine, runtime: str, tag: str, progress: Progress) -> None:
    started = time.monotonic()
    progress(f"{runtime}: building {tag} …")
    with tempfile.TemporaryDirectory(prefix=f"paas-{runtime}-") as work:
        # The Dockerfile COPYs common/… next to its own files: one small context.
        context = Path(work)
        shutil.copytree(images_dir() / runtime, context, dirs_exist_ok=True)
        shutil.copytree(images_dir() / "common", context / "common")
        engine.build_image(
            context, tag, {"BASE": BASE_TAG}, lambda line: progress(f"{runtime}: {line}"),
        )
    progress(f"{runtime}: done in {time.monotonic() - started:.0f} s")


def _run(cmd: list[str], what: str) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise EngineError(f"{what} failed (exit {result.returncode}):\n{tail}")

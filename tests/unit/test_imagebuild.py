"""The image builder's hashing/tag logic and build decisions, on a tiny fake engine; and
the supervisor's app detection, loaded from its script (no Docker anywhere)."""

from __future__ import annotations

import ast
import importlib.machinery
import importlib.util
import json
import re
import shutil
from pathlib import Path
from types import ModuleType

import pytest

from pools import imagebuild


class ImageEngine:
    """Records what the builder asked for; ``images`` are the tags that exist."""

    def __init__(self, images: set[str] | None = None, pull_works: bool = False) -> None:
        self.images = set(images or ())
        self.pull_works = pull_works
        self.calls: list[tuple[str, str]] = []
        self.contexts: dict[str, list[str]] = {}
        self.buildargs: dict[str, dict[str, str]] = {}

    def image_exists(self, tag: str) -> bool:
        return tag in self.images

    def pull_image(self, ref: str, tag: str) -> bool:
        self.calls.append(("pull", ref))
        if self.pull_works:
            self.images.add(tag)
        return self.pull_works

    def import_image(self, tar_path: Path, tag: str) -> None:
        self.calls.append(("import", tag))
        self.images.add(tag)

    def build_image(self, context_dir: Path, tag: str, buildargs: dict[str, str], progress) -> None:
        self.calls.append(("build", tag))
        self.contexts[tag] = sorted(p.relative_to(context_dir).as_posix()
                                    for p in context_dir.rglob("*") if p.is_file())
        self.buildargs[tag] = buildargs
        progress("Step 1/1 : FROM base")
        self.images.add(tag)

    def tag_image(self, source: str, tag: str) -> None:
        self.calls.append(("tag", f"{source}->{tag}"))
        self.images.add(tag)

    def image_tags(self, repository: str) -> list[str]:
        return sorted(t for t in self.images if t.startswith(repository + ":"))

    def untag_image(self, tag: str) -> None:
        self.calls.append(("untag", tag))
        self.images.discard(tag)


@pytest.fixture
def images_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of pools/images, so tests may edit sources."""
    copy = tmp_path / "images"
    shutil.copytree(imagebuild.images_dir(), copy)
    monkeypatch.setattr(imagebuild, "images_dir", lambda: copy)
    return copy


@pytest.fixture
def fake_debootstrap(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    runs: list[str] = []

    def debootstrap(engine: ImageEngine, progress) -> None:
        runs.append("debootstrap")
        engine.import_image(Path("/nonexistent.tar"), imagebuild.BASE_TAG)

    monkeypatch.setattr(imagebuild, "_debootstrap_base", debootstrap)
    return runs


def all_tags() -> set[str]:
    return {imagebuild.image_tag(name) for name in imagebuild.RUNTIMES}


# --- tags ------------------------------------------------------------------------
def test_every_runtime_has_a_dockerfile() -> None:
    for name in imagebuild.RUNTIMES:
        dockerfile = (imagebuild.images_dir() / name / "Dockerfile").read_text()
        assert "ARG BASE" in dockerfile and "FROM ${BASE}" in dockerfile


def test_tag_is_paas_runtime_and_twelve_hex_digits_and_stable() -> None:
    for name in imagebuild.RUNTIMES:
        tag = imagebuild.image_tag(name)
        assert re.fullmatch(rf"paas/{name}:[0-9a-f]{{12}}", tag)
        assert imagebuild.image_tag(name) == tag
    assert len(all_tags()) == 4


def test_unknown_runtime_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown runtime"):
        imagebuild.image_tag("php")


def test_editing_a_runtime_changes_only_its_tag(images_copy: Path) -> None:
    before = {name: imagebuild.image_tag(name) for name in imagebuild.RUNTIMES}
    with open(images_copy / "nginx" / "nginx.conf", "a") as handle:
        handle.write("# changed\n")
    after = {name: imagebuild.image_tag(name) for name in imagebuild.RUNTIMES}
    assert after["nginx"] != before["nginx"]
    assert {k: v for k, v in after.items() if k != "nginx"} == {
        k: v for k, v in before.items() if k != "nginx"}


def test_common_files_and_new_files_change_every_tag(images_copy: Path) -> None:
    before = all_tags()
    (images_copy / "common" / "extra.conf").write_text("x\n")
    assert all_tags().isdisjoint(before)


def test_executable_bit_and_base_identity_are_part_of_the_hash(
    images_copy: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = imagebuild.image_tag("python")
    (images_copy / "common" / "paas-supervisor").chmod(0o644)
    assert imagebuild.image_tag("python") != before
    (images_copy / "common" / "paas-supervisor").chmod(0o755)
    assert imagebuild.image_tag("python") == before
    monkeypatch.setattr(imagebuild, "BASE_IDENTITY", "something else")
    assert imagebuild.image_tag("python") != before


# --- build decisions ---------------------------------------------------------------
def test_up_to_date_images_are_not_rebuilt_and_need_no_base() -> None:
    engine = ImageEngine(images=all_tags())
    lines: list[str] = []
    tags = imagebuild.build_images(engine, progress=lines.append)
    assert set(tags.values()) == all_tags()
    assert [call for call in engine.calls if call[0] != "tag"] == []
    assert sum("up to date" in line for line in lines) == 4


def test_missing_base_pull_fails_so_debootstrap_then_build(fake_debootstrap: list[str]) -> None:
    engine = ImageEngine()
    lines: list[str] = []
    tags = imagebuild.build_images(engine, runtimes=["nginx"], progress=lines.append)
    assert tags == {"nginx": imagebuild.image_tag("nginx")}
    assert engine.calls[:3] == [
        ("pull", imagebuild.BASE_PULL_REF), ("import", imagebuild.BASE_TAG),
        ("build", tags["nginx"])]
    assert fake_debootstrap == ["debootstrap"]
    assert any("debootstrap instead" in line for line in lines)
    assert any(line.startswith("nginx: done in") for line in lines)
    assert "nginx: Step 1/1 : FROM base" in lines  # build output is streamed, prefixed


def test_offline_never_pulls(fake_debootstrap: list[str]) -> None:
    engine = ImageEngine(pull_works=True)
    imagebuild.build_images(engine, offline=True, runtimes=["apache"], progress=lambda _: None)
    assert ("pull", imagebuild.BASE_PULL_REF) not in engine.calls
    assert fake_debootstrap == ["debootstrap"]


def test_pulled_base_skips_debootstrap(fake_debootstrap: list[str]) -> None:
    engine = ImageEngine(pull_works=True)
    imagebuild.build_images(engine, runtimes=["node"], progress=lambda _: None)
    assert fake_debootstrap == []
    assert ("build", imagebuild.image_tag("node")) in engine.calls


def test_existing_base_is_reused(fake_debootstrap: list[str]) -> None:
    engine = ImageEngine(images={imagebuild.BASE_TAG})
    imagebuild.build_images(engine, progress=lambda _: None)
    assert fake_debootstrap == [] and not any(call[0] == "pull" for call in engine.calls)
    assert sum(call[0] == "build" for call in engine.calls) == 4


def test_build_context_holds_the_runtime_and_common_files(fake_debootstrap: list[str]) -> None:
    engine = ImageEngine(images={imagebuild.BASE_TAG})
    tags = imagebuild.build_images(engine, runtimes=["python", "apache"], progress=lambda _: None)
    assert {"Dockerfile", "common/paas-supervisor", "common/placeholder.html"} <= set(
        engine.contexts[tags["python"]])
    assert "apache-foreground" in engine.contexts[tags["apache"]]
    assert engine.buildargs[tags["python"]] == {"BASE": imagebuild.BASE_TAG}
    assert ("tag", f"{tags['python']}->paas/python:latest") in engine.calls


def test_imagebuild_does_not_import_docker() -> None:
    tree = ast.parse(Path(imagebuild.__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom)}
    assert "docker" not in imported


# --- the supervisor's detection ------------------------------------------------------
@pytest.fixture
def supervisor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    path = imagebuild.images_dir() / "common" / "paas-supervisor"
    loader = importlib.machinery.SourceFileLoader("paas_supervisor", str(path))
    spec = importlib.util.spec_from_loader("paas_supervisor", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    (tmp_path / "app").mkdir()
    (tmp_path / "venv/bin").mkdir(parents=True)
    (tmp_path / "venv/bin/python").touch()
    monkeypatch.setattr(module, "APP_DIR", tmp_path / "app")
    monkeypatch.setattr(module, "VENV", tmp_path / "venv")
    monkeypatch.setattr(module, "REQS_STAMP", tmp_path / "venv/.stamp")
    return module


def test_supervisor_finds_nothing_in_an_empty_app_dir(supervisor: ModuleType) -> None:
    assert supervisor.detect() is None


def test_supervisor_prefers_app_py_and_uses_the_venv(supervisor: ModuleType) -> None:
    app = supervisor.APP_DIR
    (app / "app.py").write_text("print('hi')")
    (app / "server.js").write_text("")
    cmd, installs = supervisor.detect()
    assert cmd == [str(supervisor.VENV / "bin/python"), "app.py"] and installs == []


def test_supervisor_pip_installs_only_when_requirements_change(supervisor: ModuleType) -> None:
    app = supervisor.APP_DIR
    (app / "app.py").write_text("")
    (app / "requirements.txt").write_text("flask\n")
    _, installs = supervisor.detect()
    assert [what for what, _ in installs] == ["pip install -r requirements.txt"]
    supervisor.REQS_STAMP.write_text(supervisor.requirements_hash())
    assert supervisor.detect()[1] == []
    (app / "requirements.txt").write_text("flask\nrequests\n")
    assert len(supervisor.detect()[1]) == 1


def test_supervisor_runs_npm_start_and_installs_declared_dependencies(
    supervisor: ModuleType,
) -> None:
    app = supervisor.APP_DIR
    package = {"scripts": {"start": "node main.js"}, "dependencies": {"left-pad": "1"}}
    (app / "package.json").write_text(json.dumps(package))
    cmd, installs = supervisor.detect()
    assert cmd == ["npm", "start"] and [what for what, _ in installs] == ["npm install"]
    (app / "node_modules").mkdir()
    assert supervisor.detect()[1] == []


def test_supervisor_falls_back_to_server_js(supervisor: ModuleType) -> None:
    app = supervisor.APP_DIR
    (app / "package.json").write_text('{"name": "x", "scripts": {"test": "true"}}')
    assert supervisor.detect() is None
    (app / "server.js").write_text("")
    assert supervisor.detect() == (["node", "server.js"], [])
    (app / "package.json").write_text("{not json")
    assert supervisor.detect() == (["node", "server.js"], [])


def test_supervisor_reports_signals_like_a_shell(supervisor: ModuleType) -> None:
    assert supervisor.exit_code(1 << 8) == 1
    assert supervisor.exit_code(9) == 137  # killed by SIGKILL, e.g. out of memory


def test_outdated_runtime_tags_are_removed_and_others_kept() -> None:
    outdated = {"paas/nginx:000000000000", "paas/node:111111111111"}
    unrelated = {"paas/base:bookworm", "paas-other/nginx:000000000000"}
    engine = ImageEngine(images=all_tags() | outdated | unrelated)
    lines: list[str] = []
    imagebuild.build_images(engine, progress=lines.append)
    assert engine.images == all_tags() | unrelated | {f"paas/{r}:latest" for r in imagebuild.RUNTIMES}
    assert sorted(call[1] for call in engine.calls if call[0] == "untag") == sorted(outdated)
    assert sum("outdated image" in line for line in lines) == 2

"""The runtime images on the real engine, run exactly as the platform runs them (through
``DockerEngine.create``: cap_drop ALL plus the runtime's caps, no-new-privileges, 256 MB,
256 pids, a read-only root with tmpfs mounts where it writes): placeholder at once,
content root writable by uid 1000, and the python/node supervisor's start, reload,
crash and stop behaviour."""

from __future__ import annotations

import io
import socket
import tarfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator

import pytest

from pools.engine import ContainerInfo, ContainerSpec, DockerEngine
from pools.imagebuild import image_tag
from pools.runtimes import DEFAULTS, writable_mounts

pytestmark = pytest.mark.integration

RUNTIMES = {runtime.name: runtime for runtime in DEFAULTS}
# What nginx/apache really need (reported to the platform); the pool's default list adds
# CHOWN and DAC_OVERRIDE, which the images no longer use.
MINIMAL_WEB_CAPS = ["SETUID", "SETGID", "NET_BIND_SERVICE"]
READY = "This container is ready"

Run = Callable[..., tuple[ContainerInfo, int]]


@pytest.fixture(scope="module")
def run_image(docker_engine: DockerEngine) -> Iterator[Run]:
    """``run_image("nginx")`` → (container, host port); every container carries this
    module's own ``paas.instance`` label and is removed at the end."""

    def run(runtime: str, caps: list[str] | None = None) -> tuple[ContainerInfo, int]:
        port = free_port()
        return docker_engine.create(image_spec(runtime, port, caps)), port

    yield run
    for info in docker_engine.list_managed(INSTANCE):
        docker_engine.remove(info.id)


INSTANCE = f"imgtest-{uuid.uuid4().hex[:8]}"


def image_spec(runtime: str, port: int, caps: list[str] | None = None,
               suffix: str = "") -> ContainerSpec:
    defaults = RUNTIMES[runtime]
    return ContainerSpec(
        name=f"paas-{INSTANCE}-{runtime}-{port}{suffix}", image=image_tag(runtime),
        labels={"paas.instance": INSTANCE, "paas.runtime": runtime},
        internal_port=defaults.internal_port, host_port=port, bind_ip="127.0.0.1",
        cap_add=caps if caps is not None else [c for c in defaults.cap_add.split(",") if c],
        environment={"PAAS_CONTENT_ROOT": defaults.content_root},
        read_only=True, tmpfs=writable_mounts(
            runtime_name=runtime, content_root=defaults.content_root, size_mb=256),
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get(port: int, *, expect: str, timeout: float = 15.0) -> tuple[int, str]:
    """GET / until the body contains ``expect`` or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=3) as resp:
                status, body = resp.status, resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read().decode("utf-8", "replace")
        except OSError as exc:
            status, body = 0, str(exc)
        if expect in body or time.monotonic() > deadline:
            return status, body
        time.sleep(0.2)


def push(engine: DockerEngine, container_id: str, root: str, files: dict[str, str]) -> None:
    """What the platform does on an upload: replace the root's content, as uid 1000,
    with a tar owned by 1000 (one exec that clears and unpacks)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, text in files.items():
            data = text.encode()
            member = tarfile.TarInfo(name)
            member.size, member.mode, member.uid, member.gid = len(data), 0o644, 1000, 1000
            member.mtime = int(time.time())
            archive.addfile(member, io.BytesIO(data))
    engine.put_archive(container_id, root, buffer.getvalue(), replace=True)


def wait_for_log(engine: DockerEngine, container_id: str, text: str,
                 timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        logs = engine.logs(container_id, tail=300)
        if text in logs or time.monotonic() > deadline:
            return logs
        time.sleep(0.2)


PY_APP = """\
import http.server, os, signal, socketserver
{extra}
class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = {text!r}.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

# socketserver.TCPServer binds without SO_REUSEADDR: PORT must be truly free.
with socketserver.TCPServer(("", int(os.environ["PORT"])), Hello) as server:
    server.serve_forever()
"""

NODE_APP = """\
const http = require("http");
http.createServer((req, res) => res.end(%r)).listen(process.env.PORT);
console.log("node app listening on " + process.env.PORT);
"""


# --- every runtime ------------------------------------------------------------------
@pytest.mark.parametrize("runtime", ["nginx", "apache", "python", "node"])
def test_fresh_container_answers_with_the_placeholder(run_image: Run, runtime: str) -> None:
    info, port = run_image(runtime)
    status, body = get(port, expect=READY, timeout=10)
    assert status == 200 and READY in body and runtime in body


@pytest.mark.parametrize("runtime", ["nginx", "apache"])
def test_web_servers_need_only_setuid_setgid_net_bind(
    run_image: Run, docker_engine: DockerEngine, runtime: str,
) -> None:
    info, port = run_image(runtime, MINIMAL_WEB_CAPS)
    status, _ = get(port, expect=READY, timeout=10)
    assert status == 200
    state = docker_engine.inspect(info.id)
    assert state is not None and state.running


@pytest.mark.parametrize("runtime", ["nginx", "apache"])
def test_uploaded_static_files_replace_the_placeholder(
    run_image: Run, docker_engine: DockerEngine, runtime: str,
) -> None:
    info, port = run_image(runtime)
    get(port, expect=READY)
    push(docker_engine, info.id, RUNTIMES[runtime].content_root,
         {"index.html": f"<h1>my {runtime} site</h1>"})
    status, body = get(port, expect=f"my {runtime} site", timeout=5)
    assert status == 200 and f"my {runtime} site" in body
    logs = wait_for_log(docker_engine, info.id, "GET / HTTP/1.1")
    assert "GET / HTTP/1.1" in logs  # the access log goes to the container log
    # A second push replaces: the first push's files are gone, odd names included.
    push(docker_engine, info.id, RUNTIMES[runtime].content_root, {"-v x.html": "second"})
    root = RUNTIMES[runtime].content_root
    assert docker_engine.exec(info.id, ["ls", "-A", root])[1].strip().split("\n") == ["-v x.html"]


# --- python ---------------------------------------------------------------------------
def test_python_app_starts_on_hup_and_new_code_replaces_the_old(
    run_image: Run, docker_engine: DockerEngine,
) -> None:
    info, port = run_image("python")
    for _ in range(5):  # placeholder connections must not keep PORT busy for the app
        get(port, expect=READY)
    # The first version ignores SIGTERM: the reload must still replace it (SIGKILL).
    ignore_term = "signal.signal(signal.SIGTERM, signal.SIG_IGN)"
    push(docker_engine, info.id, "/app",
         {"app.py": PY_APP.format(extra=ignore_term, text="hello from python")})
    docker_engine.signal(info.id, "SIGHUP")
    assert get(port, expect="hello from python") == (200, "hello from python")

    push(docker_engine, info.id, "/app", {"app.py": PY_APP.format(extra="", text="version two")})
    docker_engine.signal(info.id, "SIGHUP")
    assert get(port, expect="version two", timeout=20) == (200, "version two")


def test_python_crash_is_logged_and_retried_and_the_container_lives(
    run_image: Run, docker_engine: DockerEngine,
) -> None:
    info, port = run_image("python")
    get(port, expect=READY)
    push(docker_engine, info.id, "/app", {"app.py": "raise RuntimeError('boom at import')\n"})
    docker_engine.signal(info.id, "SIGHUP")
    logs = wait_for_log(docker_engine, info.id, "restarting in 2s")
    assert "Traceback (most recent call last)" in logs
    assert "RuntimeError: boom at import" in logs
    assert "[paas] app exited with code 1; restarting in 1s" in logs
    assert "[paas] app exited with code 1; restarting in 2s" in logs
    state = docker_engine.inspect(info.id)
    assert state is not None and state.running

    # Fixing the code and reloading brings the app up at once.
    push(docker_engine, info.id, "/app", {"app.py": PY_APP.format(extra="", text="fixed")})
    docker_engine.signal(info.id, "SIGHUP")
    assert get(port, expect="fixed", timeout=10) == (200, "fixed")


def test_python_requirements_install_once_per_content(
    run_image: Run, docker_engine: DockerEngine,
) -> None:
    info, port = run_image("python")
    app = PY_APP.format(extra="", text="with requirements")
    # No package index is reachable here: a requirements file without packages still
    # exercises the install and the skip-when-unchanged paths.
    files = {"app.py": app, "requirements.txt": "# nothing yet\n"}
    push(docker_engine, info.id, "/app", files)
    docker_engine.signal(info.id, "SIGHUP")
    assert get(port, expect="with requirements")[0] == 200
    assert "[paas] pip install -r requirements.txt" in docker_engine.logs(info.id, tail=300)

    push(docker_engine, info.id, "/app", files)
    docker_engine.signal(info.id, "SIGHUP")
    logs = wait_for_log(docker_engine, info.id, "requirements.txt unchanged")
    assert "[paas] requirements.txt unchanged; skipping pip install" in logs


def test_sigterm_stops_app_and_supervisor_with_exit_code_0(
    run_image: Run, docker_engine: DockerEngine,
) -> None:
    info, port = run_image("python")
    push(docker_engine, info.id, "/app", {"app.py": PY_APP.format(extra="", text="up")})
    docker_engine.signal(info.id, "SIGHUP")
    assert get(port, expect="up")[0] == 200
    docker_engine.signal(info.id, "SIGTERM")
    deadline = time.monotonic() + 10
    state = docker_engine.inspect(info.id)
    while state is not None and state.running and time.monotonic() < deadline:
        time.sleep(0.2)
        state = docker_engine.inspect(info.id)
    assert state is not None and state.status == "exited" and state.exit_code == 0
    assert "[paas] stopped" in docker_engine.logs(info.id)


# --- node -----------------------------------------------------------------------------
def test_node_server_js_runs_after_hup(run_image: Run, docker_engine: DockerEngine) -> None:
    info, port = run_image("node")
    get(port, expect=READY)
    push(docker_engine, info.id, "/app", {"server.js": NODE_APP % "hello from node"})
    docker_engine.signal(info.id, "SIGHUP")
    assert get(port, expect="hello from node") == (200, "hello from node")
    logs = wait_for_log(docker_engine, info.id, "node app listening on 8080")
    assert "[paas] starting: node server.js" in logs and "node app listening on 8080" in logs


def test_node_package_json_start_script_runs_with_npm_start(
    run_image: Run, docker_engine: DockerEngine,
) -> None:
    info, port = run_image("node")
    package = '{"name": "demo", "version": "1.0.0", "scripts": {"start": "node main.js"}}'
    push(docker_engine, info.id, "/app",
         {"package.json": package, "main.js": NODE_APP % "hello from npm start"})
    docker_engine.signal(info.id, "SIGHUP")
    assert get(port, expect="hello from npm start", timeout=20) == (200, "hello from npm start")
    assert "[paas] starting: npm start" in docker_engine.logs(info.id, tail=300)


def test_replace_hands_the_port_to_the_new_container(run_image: Run,
                                                    docker_engine: DockerEngine) -> None:
    """``replace``: the new container is created while the old one is killed, and
    started once the port is free; the old one stays, stopped, for ``remove``."""
    old, port = run_image("nginx")
    push(docker_engine, old.id, RUNTIMES["nginx"].content_root, {"index.html": "old one"})
    assert get(port, expect="old one")[0] == 200
    new = docker_engine.replace(old.id, image_spec("nginx", port, suffix="-next"))
    assert new.id != old.id and new.running
    status, body = get(port, expect=READY, timeout=10)  # the new one's placeholder
    assert status == 200 and READY in body and "old one" not in body
    stopped = docker_engine.inspect(old.id)
    assert stopped is not None and not stopped.running
    # An old container already gone (removed meanwhile) is no reason to fail.
    docker_engine.remove(old.id)
    newer = docker_engine.replace(old.id, image_spec("nginx", free_port(), suffix="-3"))
    assert newer.running

"""The local Docker engine backend: one daemon, one container per slot.

``DockerEngine`` talks to a real daemon through the Docker SDK (``DOCKER_HOST`` as the SDK
reads it) and raises the project's own errors (see ``pools.engine.base``).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pools.engine.base import LABEL_INSTANCE, ContainerInfo, ContainerSpec, EngineEvent
from pools.errors import EngineError, EngineUnavailable, ImageMissing

CONTENT_USER = "1000"  # every runtime's content root belongs to uid 1000
EXEC_STDIN_TIMEOUT = 120  # seconds for one content push (50 MB at most)
EXEC_EXIT_WAIT = 5.0  # seconds from the end of an exec's output to its recorded exit


def _label_filters(instance: str, labels: dict[str, str]) -> list[str]:
    return [f"{LABEL_INSTANCE}={instance}"] + [
        f"paas.{key}={value}" for key, value in labels.items()
    ]


class DockerEngine:
    """The real engine, through the Docker SDK (``DOCKER_HOST`` as the SDK reads it)."""

    def __init__(self, timeout: int = 60, base_url: str = "", tls: Any = None) -> None:
        """``base_url`` (``unix://``, ``tcp://``, ``ssh://``) and ``tls`` (a
        ``docker.tls.TLSConfig``) name another engine than ``DOCKER_HOST``: a swarm node."""
        import docker
        from docker import errors

        self._errors = errors
        try:
            if tls:
                self._client = _tls_client(base_url, tls, timeout)
            elif base_url:
                self._client = docker.DockerClient(base_url=base_url, tls=False,
                                                   timeout=timeout)
            else:
                self._client = docker.from_env(timeout=timeout)
        except errors.DockerException as exc:
            raise EngineUnavailable(_unreachable_message(exc)) from exc

    # -- error translation ------------------------------------------------------
    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        import requests

        try:
            return fn(*args, **kwargs)
        except self._errors.ImageNotFound as exc:
            raise ImageMissing(
                f"image missing: {exc.explanation}; run `python manage.py pool build-images`"
            ) from exc
        except self._errors.APIError as exc:
            raise EngineError(f"Docker refused: {exc.explanation or exc}") from exc
        except (requests.exceptions.ConnectionError, self._errors.DockerException) as exc:
            raise EngineUnavailable(_unreachable_message(exc)) from exc

    def _get(self, container_id: str) -> Any:
        """The SDK container, or None when Docker says it does not exist."""
        try:
            return self._call(self._client.containers.get, container_id)
        except EngineError as exc:
            if isinstance(exc.__cause__, self._errors.NotFound):
                return None
            raise

    def ping(self) -> None:
        self._call(self._client.ping)

    # -- networks -----------------------------------------------------------------
    def ensure_network(self, name: str, labels: dict[str, str]) -> None:
        if self._networks_named(name):
            return
        try:
            self._call(
                self._client.networks.create, name, driver="bridge", labels=labels,
                check_duplicate=True,
                # No traffic between user containers: each only talks to the outside.
                options={"com.docker.network.bridge.enable_icc": "false"},
            )
        except EngineError:
            if not self._networks_named(name):
                raise  # a racing creator is fine; anything else is not
        # Docker allows two networks of one name, and then refuses to attach a container
        # to either ("ambiguous"): if processes raced, keep the oldest, drop the rest.
        for extra in self._networks_named(name)[1:]:
            with contextlib.suppress(EngineError):
                self._call(extra.remove)

    def _networks_named(self, name: str) -> list[Any]:
        found = self._call(self._client.networks.list, names=[name])
        exact = [n for n in found if n.name == name]  # the filter matches substrings too
        return sorted(exact, key=lambda n: (n.attrs.get("Created", ""), n.id))

    def remove_network(self, name: str) -> None:
        for network in self._networks_named(name):
            # Still in use or already gone: the next cleanup retries.
            with contextlib.suppress(EngineError):
                self._call(network.remove)

    # -- containers -----------------------------------------------------------------
    def create(self, spec: ContainerSpec) -> ContainerInfo:
        return self._start(self._create(spec))

    def replace(self, old_id: str, spec: ContainerSpec) -> ContainerInfo:
        """``stop(old_id)``, then ``create(spec)``: the new container is created while
        the old one is stopped, and started once the old one has let go of the port.
        Docker answers a kill only after the container's network is torn down (about
        0.1 s after its death, more on a host with many published ports), and the
        create is off the path a user waits on meanwhile."""
        with ThreadPoolExecutor(max_workers=1) as pool:
            stopping = pool.submit(self.stop, old_id)
            try:
                container = self._create(spec)
            finally:
                stopping.result()  # an error stopping it is the caller's to handle
        return self._start(container)

    def _create(self, spec: ContainerSpec) -> Any:
        """The container, created (not started) or adopted (Docker's 409: a container of
        that name exists, from an earlier try of this build)."""
        try:
            return self._call(self._client.containers.create, **_run_kwargs(spec))
        except EngineError as exc:
            if getattr(exc.__cause__, "status_code", None) != 409:
                raise
            return self._call(self._client.containers.get, spec.name)

    def _start(self, container: Any) -> ContainerInfo:
        if container.status == "running":
            return _info(container)
        self._call(container.start)
        # Started: no need to ask Docker again (a container that exits at once is
        # noticed by the caller's readiness wait).
        info = _info(container)
        info.status = "running"
        return info

    def stop(self, container_id: str) -> None:
        """Kill the container (SIGKILL: it is being replaced and its files discarded, so
        no grace period), which frees its host port; it stays, stopped, until
        ``remove``. Docker answers once the container has stopped and its port is
        released. Gone or not running: nothing to do."""
        try:
            self._call(self._client.api.kill, container_id)
        except EngineError as exc:
            cause = exc.__cause__
            if isinstance(cause, self._errors.NotFound):
                return
            if getattr(cause, "status_code", None) == 409:
                return  # "is not running"
            raise

    def remove(self, container_id: str) -> None:
        try:
            self._call(self._client.api.remove_container, container_id, force=True, v=True)
        except EngineError as exc:
            cause = exc.__cause__
            if isinstance(cause, self._errors.NotFound):
                return
            if getattr(cause, "status_code", None) == 409 and "in progress" in str(cause):
                return  # Docker is already removing it
            raise

    def inspect(self, container_id: str) -> ContainerInfo | None:
        container = self._get(container_id)
        return _info(container) if container is not None else None

    def list_managed(self, instance: str, **labels: str) -> list[ContainerInfo]:
        found = self._call(
            self._client.containers.list, all=True, sparse=False,
            filters={"label": _label_filters(instance, labels)}, ignore_removed=True,
        )
        return [_info(container) for container in found]

    def exec(self, container_id: str, cmd: list[str], user: str = "") -> tuple[int, str]:
        container = self._require(container_id)
        result = self._call(container.exec_run, cmd, user=user, demux=False)
        return result.exit_code, (result.output or b"").decode("utf-8", "replace")

    def put_archive(self, container_id: str, path: str, data: bytes,
                    replace: bool = False) -> None:
        """Unpack a tar into ``path`` as the content owner (uid 1000); with ``replace``,
        whatever ``path`` held is deleted first (one exec, not two: each costs a round
        of Docker calls on every push). Docker's own archive endpoint writes into the
        image's layers, so it cannot reach a tmpfs mount or a read-only root
        (moby#22020): `tar -x` inside, fed on stdin."""
        # `head -c` ends tar's stdin after the archive's length: a TLS connection (a
        # swarm node's API) cannot be half-closed from Python, whose ssl shutdown drops
        # the TLS layer before the answer is read. The path is an argument of the
        # script, never part of it.
        unpack = f'head -c {len(data)} | tar -x -f - -C "$1"'
        if replace:
            unpack = f'find "$1" -mindepth 1 -delete && {unpack}'
        code, output = self._exec_stdin(container_id, ["sh", "-c", unpack, "sh", path], data,
                                        user=CONTENT_USER)
        if code != 0:
            raise EngineError(f"unpacking the files into {path} failed: {output.strip()[-500:]}")

    def _exec_stdin(self, container_id: str, cmd: list[str], data: bytes,
                    user: str) -> tuple[int, str]:
        """Run ``cmd`` with ``data`` on its stdin; its exit code and output."""
        from docker.utils.socket import frames_iter

        api = self._client.api
        exec_id = self._call(api.exec_create, container_id, cmd, stdin=True, user=user)["Id"]
        stream = self._call(api.exec_start, exec_id, socket=True)
        # The hijacked connection: under the SDK's wrapper (unix), or a TLS socket.
        connection = getattr(stream, "_sock", stream)
        try:
            connection.settimeout(EXEC_STDIN_TIMEOUT)
            connection.sendall(data)
            if not isinstance(connection, ssl.SSLSocket):
                connection.shutdown(socket.SHUT_WR)  # end of stdin, where a socket can
            output = b"".join(data for _stream, data in frames_iter(stream, tty=False))
        except OSError as exc:
            raise EngineError(f"exec in {container_id[:12]} failed: {exc}") from exc
        finally:
            stream.close()
        return self._exec_exit_code(exec_id), output.decode("utf-8", "replace")

    def _exec_exit_code(self, exec_id: str) -> int:
        # The output ends when the process closes it; its exit is recorded a moment later
        # (usually within milliseconds: short pauses first, as each one delays a push).
        deadline = time.monotonic() + EXEC_EXIT_WAIT
        pause = 0.002
        while True:
            state = self._call(self._client.api.exec_inspect, exec_id)
            if not state.get("Running") and state.get("ExitCode") is not None:
                return int(state["ExitCode"])
            if time.monotonic() > deadline:
                raise EngineError(f"exec {exec_id[:12]} did not finish")
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    def logs(self, container_id: str, tail: int = 100, timestamps: bool = False) -> str:
        container = self._require(container_id)
        raw = self._call(container.logs, tail=tail, stdout=True, stderr=True,
                         timestamps=timestamps)
        return raw.decode("utf-8", "replace")

    def signal(self, container_id: str, signal: str) -> None:
        self._call(self._client.api.kill, container_id, signal=signal)

    def network_rx_bytes(self, container_id: str) -> int | None:
        """Bytes the container received on its networks since it started (requests
        reaching it); None when it is gone."""
        container = self._get(container_id)
        if container is None:
            return None
        stats = self._call(container.stats, stream=False, one_shot=True)
        return sum(int(net.get("rx_bytes", 0)) for net in (stats.get("networks") or {}).values())

    def events(self, instance: str) -> Iterator[EngineEvent]:
        stream = self._call(
            self._client.events, decode=True,
            filters={"type": "container", "label": [f"{LABEL_INSTANCE}={instance}"]},
        )
        try:
            for raw in stream:
                actor = raw.get("Actor", {})
                yield EngineEvent(
                    action=str(raw.get("Action", "")).split(":")[0],
                    container_id=str(actor.get("ID", raw.get("id", ""))),
                    labels=dict(actor.get("Attributes", {})),
                )
        except Exception as exc:  # the stream breaks when the daemon goes away
            raise EngineUnavailable(_unreachable_message(exc)) from exc
        finally:
            stream.close()

    def _require(self, container_id: str) -> Any:
        container = self._get(container_id)
        if container is None:
            raise EngineError(f"container {container_id[:12]} does not exist")
        return container

    # -- images ---------------------------------------------------------------------
    def image_exists(self, tag: str) -> bool:
        try:
            self._call(self._client.images.get, tag)
            return True
        except ImageMissing:
            return False
        except EngineError as exc:
            if isinstance(exc.__cause__, self._errors.NotFound):
                return False
            raise

    def pull_image(self, ref: str, tag: str) -> bool:
        try:
            image = self._call(self._client.images.pull, ref)
        except (EngineError, ImageMissing):
            return False
        repository, _, version = tag.partition(":")
        self._call(image.tag, repository, version or "latest")
        return True

    def import_image(self, tar_path: Path, tag: str) -> None:
        repository, _, version = tag.partition(":")
        with open(tar_path, "rb") as handle:
            self._call(
                self._client.api.import_image_from_data, handle.read(),
                repository=repository, tag=version or "latest",
            )

    def build_image(
        self, context_dir: Path, tag: str, buildargs: dict[str, str],
        progress: Callable[[str], None],
    ) -> None:
        stream = self._call(
            self._client.api.build, path=str(context_dir), tag=tag, buildargs=buildargs,
            network_mode="host", rm=True, forcerm=True, decode=True,
        )
        for chunk in stream:
            if "error" in chunk:
                raise EngineError(f"building {tag} failed: {chunk['error'].strip()}")
            line = str(chunk.get("stream", "")).rstrip()
            if line:
                progress(line)

    def tag_image(self, source: str, tag: str) -> None:
        repository, _, version = tag.partition(":")
        image = self._call(self._client.images.get, source)
        self._call(image.tag, repository, version or "latest")


    def image_tags(self, repository: str) -> list[str]:
        images = self._call(self._client.images.list, name=repository)
        return sorted(t for image in images for t in image.tags if t.startswith(repository + ":"))

    def untag_image(self, tag: str) -> None:
        """Remove one tag; an image a container still uses keeps its layers."""
        with contextlib.suppress(EngineError):
            self._call(self._client.images.remove, tag, noprune=False)

    def volumes_of(self, container_id: str) -> list[str]:
        """The names of the volumes mounted in the container (none when it is gone)."""
        container = self._get(container_id)
        mounts = container.attrs.get("Mounts", []) if container is not None else []
        return [str(m["Name"]) for m in mounts if m.get("Type") == "volume" and m.get("Name")]

    def volumes_remove(self, names: list[str]) -> bool:
        """Remove these volumes; True once none of them is left (False: still in use)."""
        done = True
        for name in names:
            try:
                self._call(self._client.api.remove_volume, name)
            except EngineError as exc:
                if getattr(exc.__cause__, "status_code", None) != 404:
                    done = False  # in use still: the caller tries again
        return done

    def volumes_prune(self, instance: str) -> None:
        """Remove the unused volumes labelled with ``instance`` (a swarm task's tmpfs),
        one by one: the engine's prune skips those the swarm agent still counts as
        referenced after their container is gone."""
        unused = self._call(self._client.volumes.list, filters={
            "label": [f"{LABEL_INSTANCE}={instance}"], "dangling": True})
        for volume in unused:
            with contextlib.suppress(EngineError):  # taken again meanwhile, or gone
                self._call(volume.remove)

    def image_send(self, tag: str, progress: Callable[[str], None]) -> list[str]:
        return []  # one engine: the image is already where its containers run

    def save_image(self, tag: str) -> Iterator[bytes]:
        """``docker save`` of one image, as a stream of tar chunks."""
        return iter(self._call(self._client.api.get_image, tag))

    def load_image(self, chunks: Iterator[bytes]) -> None:
        """``docker load`` of a tar stream (sent chunked, never held whole)."""
        self._call(self._client.api.load_image, chunks, quiet=True)


# The API the swarm backend needs, and Debian 12's engine speaks (20.10): a TLS client
# is pinned to it, as asking the engine first would verify against the wrong CA.
TLS_API_VERSION = "1.41"


def _tls_client(base_url: str, tls: Any, timeout: int) -> Any:
    """A client of an engine API over TLS that verifies with *our* CA: requests lets
    REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a session's CA (psf/requests#3829,
    docker/docker-py#2433), so the session must not read the environment."""
    import docker

    client = docker.DockerClient(base_url=base_url, tls=tls, timeout=timeout,
                                 version=TLS_API_VERSION)
    client.api.trust_env = False
    return client


def sdk_import() -> None:
    """Import the Docker SDK now rather than on first use: a process that forks workers
    afterwards (the task cluster) then shares one copy with all of them."""
    import docker  # noqa: F401
    import docker.utils.socket  # noqa: F401
    import requests  # noqa: F401


def _unreachable_message(exc: Exception) -> str:
    return (
        f"Docker engine not reachable ({exc}). Start it: as root, "
        "`apt-get install -y docker.io && dockerd --live-restore &` (or `systemctl start docker`)."
    )


def _run_kwargs(spec: ContainerSpec) -> dict[str, Any]:
    """Hardened create() arguments: no capabilities beyond the runtime's, bounded
    resources, rotated logs, our own network, never privileged, never the socket."""
    return {
        "image": spec.image,
        "name": spec.name,
        "labels": spec.labels,
        "detach": True,
        "environment": spec.environment,
        "ports": {f"{spec.internal_port}/tcp": (spec.bind_ip, spec.host_port)},
        "network": spec.network or None,
        "cap_drop": ["ALL"],
        "cap_add": spec.cap_add,
        "security_opt": ["no-new-privileges"],
        "mem_limit": f"{spec.mem_limit_mb}m",
        "memswap_limit": f"{spec.mem_limit_mb}m",
        "nano_cpus": int(spec.cpus * 1e9),
        "pids_limit": spec.pids_limit,
        "log_config": {"type": "json-file", "config": {"max-size": "1m", "max-file": "2"}},
        "restart_policy": {"Name": "no"},  # the platform recovers, not the daemon
        "privileged": False,
        "read_only": spec.read_only,
        "tmpfs": spec.tmpfs or None,
    }


def _info(container: Any) -> ContainerInfo:
    state = container.attrs.get("State", {})
    return ContainerInfo(
        id=container.id,
        name=container.name,
        labels=dict(container.labels or {}),
        status=str(state.get("Status", container.status)),
        exit_code=int(state.get("ExitCode", 0) or 0),
        oom_killed=bool(state.get("OOMKilled", False)),
    )

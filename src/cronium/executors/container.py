"""The `container` executor: every job in its own hardened Docker container (aiodocker).

Per job (see `container_config` for the exact Engine API request):

- image: the event's `image`, else the language default (`executors/images.py`); a missing
  image is pulled (bounded), and a failed pull fails the job permanently with a clear message;
- the script, the SDKs (`/opt/cronium/sdk`, pre-loaded through `cronium.sdk.preload_env`)
  and any `support_files` are copied in with the Engine API (`put_archive`) into an
  anonymous per-job volume at `/opt/cronium` — never argv, never a host bind mount. The
  volume is the one place the API accepts an archive into while the root filesystem is
  read-only (tmpfs mounts start empty at start); it is owned by root, so the job reads the
  script but cannot change it, and it is removed with the container (`v=True`);
- hardening: user 65534:65534, `CapDrop: ALL`, `no-new-privileges`, read-only root fs,
  tmpfs `/work` (working dir, HOME) and `/tmp`, CPU / memory (no swap) / pids limits from the
  event or the `CRONIUM_CONTAINER_*` defaults, network `none` unless the event enables
  egress, `Init` (a tiny PID 1 that forwards SIGTERM and reaps), optional runtime
  (`CRONIUM_CONTAINER_RUNTIME=runsc` for gVisor), logging driver `none` (output reaches us
  only through the attach stream, so unmasked secrets are never written to the engine's
  log files);
- the Runtime API socket is mounted read-only at `/run/cronium/<its name>`: the socket
  file alone (a bind of that one file, so nothing else of its host directory can show),
  or, when Cronium itself runs in a container, the named volume that holds it and nothing
  else (checked at start, `check_runtime_volume`): scripts reach the Runtime API with no
  network;
- labels `cronium.execution`, `cronium.job`, `cronium.event` and `cronium.node` on the
  container and its volume, so leftovers can be found (`remove_orphans` at node start,
  `remove_node_containers` for a lost lease owner, `remove_job_containers`);
- output: attached before start, demultiplexed into stdout/stderr and cut into lines only
  at newlines (`LineSplitter`), as it comes;
- stop: `terminate` sends SIGTERM, `kill` SIGKILL (the grace period lives in
  `Executor.run`); `cleanup` force-removes the container and its volume and never raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import secrets
import stat
import tarfile
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiodocker
import aiohttp
from aiodocker.containers import DockerContainer
from aiodocker.exceptions import DockerError
from aiodocker.stream import Stream
from aiodocker.volumes import DockerVolume

from cronium.db.models import LogStream
from cronium.engine.runner import CONTAINER_RUNTIME_DIR
from cronium.errors import ConfigError
from cronium.executors.base import Executor, ExecutorError, JobSpec, LineSink
from cronium.executors.images import ImageDefaults, image_for, pull_image
from cronium.logs.capture import LineSplitter
from cronium.sdk import preload_env, sdk_files

log = logging.getLogger("cronium.executors")

SCRIPT_DIR = "/opt/cronium"
SDK_DIR = f"{SCRIPT_DIR}/sdk"
WORK_DIR = "/work"
JOB_USER = "65534:65534"  # nobody:nogroup in Debian-based images
TMPFS_SIZE = "256m"  # per mount; tmpfs pages count against the memory limit anyway
DOCKER_CALL_TIMEOUT_S = 60.0  # create / archive / start / remove; wait and output are unbounded
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
# A SIGKILLed job: how often, and how far apart, to look for the engine's OOMKilled flag.
OOM_FLAG_CHECKS = 10
OOM_FLAG_INTERVAL_S = 0.1

LABEL_EXECUTION = "cronium.execution"
LABEL_JOB = "cronium.job"
LABEL_EVENT = "cronium.event"
LABEL_NODE = "cronium.node"
# Several installations (or test databases) may share one Docker engine: cleanup only ever
# touches containers of its own installation.
LABEL_INSTALLATION = "cronium.installation"

_SCRIPTS: dict[str, tuple[str, list[str]]] = {
    "bash": ("script.sh", ["bash"]),
    "python": ("script.py", ["python3", "-u"]),
    "node": ("script.js", ["node"]),
}
_STREAMS = {1: LogStream.stdout, 2: LogStream.stderr}
_ENGINE_ERRORS = (DockerError, aiohttp.ClientError, OSError)


@dataclass(frozen=True)
class ContainerLimits:
    """Defaults for events that set no `resources`."""

    cpu: float = 1.0
    memory_mb: int = 512
    pids: int = 256


@dataclass
class ContainerHandle:
    container: DockerContainer
    output: Stream
    spec: JobSpec
    image: str
    sink: LineSink | None = field(default=None, repr=False)


class ContainerExecutor(Executor[ContainerHandle]):
    mode = "container"

    def __init__(
        self,
        *,
        docker_host: str | None = None,
        images: ImageDefaults | None = None,
        limits: ContainerLimits | None = None,
        runtime: str | None = None,
        pull_timeout_s: float = 300.0,
        node_id: str | None = None,
        runtime_socket: str | None = None,
        sdk: Mapping[str, bytes] | None = None,
        support_files: Mapping[str, bytes] | None = None,
        docker: aiodocker.Docker | None = None,
    ) -> None:
        self.docker_host = docker_host or DEFAULT_DOCKER_HOST
        self.images = images or ImageDefaults()
        self.limits = limits or ContainerLimits()
        self.runtime = runtime or None
        self.pull_timeout_s = pull_timeout_s
        self.node_id = node_id
        # The Runtime API socket for /run/cronium: its host path (that file alone is bound,
        # and only while it is a socket) or the name of the volume holding it (the app
        # itself in a container).
        self.runtime_socket = runtime_socket or None
        # The SDKs (relative path -> content) go to /opt/cronium/sdk and are pre-loaded.
        self.sdk = dict(sdk_files() if sdk is None else sdk)
        # Extra files put next to the script in /opt/cronium (relative path -> content).
        self.support_files = dict(support_files or {})
        self._docker = docker
        self._owns_docker = docker is None
        self._connector: aiohttp.BaseConnector | None = None

    @classmethod
    def from_settings(cls, settings: Any, *, node_id: str | None = None) -> ContainerExecutor:
        return cls(
            docker_host=settings.docker_host,
            images=ImageDefaults.from_settings(settings),
            limits=ContainerLimits(
                cpu=settings.container_cpu,
                memory_mb=settings.container_memory_mb,
                pids=settings.container_pids,
            ),
            runtime=settings.container_runtime,
            pull_timeout_s=settings.image_pull_timeout_s,
            node_id=node_id,
            runtime_socket=check_runtime_volume(settings) or str(settings.runtime_socket_path),
        )

    # -- the engine client ------------------------------------------------------------------

    def client(self) -> aiodocker.Docker:
        """The shared Engine API client (created on first use, inside the running loop).

        Its connection pool has no size limit: each running job holds two long requests
        (the output stream and `wait`), so a bounded pool would stall creates past ~50 jobs.
        """
        if self._docker is None:
            if self.docker_host.startswith("unix://"):
                self._connector = aiohttp.UnixConnector(
                    self.docker_host.removeprefix("unix://"), limit=0
                )
                self._docker = aiodocker.Docker(url="unix://localhost", connector=self._connector)
            else:
                self._docker = aiodocker.Docker(url=self.docker_host)
        return self._docker

    async def aclose(self) -> None:
        if self._docker is not None and self._owns_docker:
            await self._docker.close()
            if self._connector is not None:
                await self._connector.close()
        self._docker = None
        self._connector = None

    async def remove_orphans(
        self,
        is_job_running: Callable[[int], Awaitable[bool]],
        *,
        installation_id: str,
        live_nodes: Collection[str] | None = None,
    ) -> int:
        """See the module-level `remove_orphans`."""
        return await remove_orphans(
            self.client(), is_job_running, installation_id=installation_id, live_nodes=live_nodes
        )

    async def remove_node_containers(self, node_id: str) -> int:
        """See the module-level `remove_node_containers`."""
        return await remove_node_containers(self.client(), node_id)

    async def remove_job_containers(self, job_id: int) -> int:
        """See the module-level `remove_job_containers`."""
        return await remove_job_containers(self.client(), job_id)

    # -- the request --------------------------------------------------------------------------

    def container_config(self, spec: JobSpec, image: str) -> dict[str, Any]:
        """The Engine API `containers/create` body for `spec` (pure: tests inspect it)."""
        if spec.language not in _SCRIPTS:
            raise ExecutorError(f"unsupported language {spec.language!r}", permanent=True)
        script_name, interpreter = _SCRIPTS[spec.language]
        cpu = spec.cpu if spec.cpu and spec.cpu > 0 else self.limits.cpu
        memory_mb = spec.memory_mb if spec.memory_mb and spec.memory_mb > 0 else None
        memory_mb = memory_mb or self.limits.memory_mb
        pids = spec.pids if spec.pids and spec.pids > 0 else self.limits.pids
        memory = int(memory_mb) * 1024 * 1024
        labels = job_labels(spec, self.node_id)
        env = {
            "HOME": WORK_DIR,
            "TMPDIR": "/tmp",
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            **(preload_env(SDK_DIR) if self.sdk else {}),
            **spec.env,
            **spec.runtime_env,
        }
        host_config: dict[str, Any] = {
            "CapDrop": ["ALL"],
            "SecurityOpt": ["no-new-privileges"],
            "ReadonlyRootfs": True,
            "Tmpfs": {
                WORK_DIR: f"rw,exec,nosuid,nodev,size={TMPFS_SIZE},uid=65534,gid=65534,mode=0700",
                "/tmp": f"rw,exec,nosuid,nodev,size={TMPFS_SIZE},mode=1777",
            },
            "Mounts": [
                # Anonymous: removed with the container (v=True). Labelled for leftovers.
                {"Type": "volume", "Target": SCRIPT_DIR, "VolumeOptions": {"Labels": labels}},
                *self._runtime_mount(),
            ],
            "NanoCpus": int(float(cpu) * 1_000_000_000),
            "Memory": memory,
            "MemorySwap": memory,  # no swap on top of the limit
            "PidsLimit": int(pids),
            "NetworkMode": "bridge" if spec.network else "none",
            "Init": True,
            "LogConfig": {"Type": "none", "Config": {}},
            "RestartPolicy": {"Name": "no"},
        }
        if self.runtime:
            host_config["Runtime"] = self.runtime
        return {
            "Image": image,
            "Cmd": [*interpreter, f"{SCRIPT_DIR}/{script_name}"],
            "Entrypoint": [],
            "User": JOB_USER,
            "WorkingDir": WORK_DIR,
            "Env": [f"{key}={value}" for key, value in env.items()],
            "Labels": labels,
            "AttachStdin": False,
            "AttachStdout": True,
            "AttachStderr": True,
            "OpenStdin": False,
            "Tty": False,
            "NetworkDisabled": not spec.network,
            "HostConfig": host_config,
        }

    def script_archive(self, spec: JobSpec) -> bytes:
        """A tar of the script, SDKs and support files: root-owned, read-only for the job."""
        assert spec.language is not None
        script_name, _ = _SCRIPTS[spec.language]
        files = {
            **{f"sdk/{path}": content for path, content in self.sdk.items()},
            **self.support_files,
            script_name: spec.content.encode(),
        }
        return _tar(files)

    def _runtime_mount(self) -> list[dict[str, Any]]:
        """The socket alone, never its directory: `CRONIUM_RUNTIME_SOCKET=/var/run/x.sock`
        must not show a job `/var/run` (the Docker socket lives there)."""
        source = self.runtime_socket
        if not source:
            return []
        if not source.startswith("/"):  # a volume: it holds the socket only (checked at start)
            return [
                {
                    "Type": "volume",
                    "Source": source,
                    "Target": CONTAINER_RUNTIME_DIR,
                    "ReadOnly": True,
                }
            ]
        try:
            is_socket = stat.S_ISSOCK(os.lstat(source).st_mode)
        except OSError:
            is_socket = False
        if not is_socket:  # not bound (yet): nothing to mount, and never another kind of file
            return []
        target = f"{CONTAINER_RUNTIME_DIR}/{os.path.basename(source)}"
        return [{"Type": "bind", "Source": source, "Target": target, "ReadOnly": True}]

    # -- Executor -------------------------------------------------------------------------------

    async def start(self, spec: JobSpec) -> ContainerHandle:
        if spec.language is None:
            raise ExecutorError("script event without a language", permanent=True)
        image = image_for(spec.language, spec.image, self.images)
        config = self.container_config(spec, image)
        archive = self.script_archive(spec)
        docker = self.client()
        name = f"cronium-job-{spec.job_id}-{secrets.token_hex(3)}"
        container = await self._create(docker, config, name, image)
        output: Stream | None = None
        try:
            async with asyncio.timeout(DOCKER_CALL_TIMEOUT_S):
                await container.put_archive(SCRIPT_DIR, archive)  # type: ignore[no-untyped-call]
                # Attached before start, so not one byte of output is missed.
                output = container.attach(stdout=True, stderr=True)
                await output.__aenter__()
                await container.start()
        except BaseException as exc:
            if output is not None:
                with contextlib.suppress(Exception):
                    await output.close()
            await asyncio.shield(_remove(container))
            if isinstance(exc, TimeoutError):
                raise ExecutorError(
                    "the Docker engine did not start the container within "
                    f"{DOCKER_CALL_TIMEOUT_S:g} s"
                ) from None
            if isinstance(exc, _ENGINE_ERRORS):
                raise _engine_error("cannot start the container", exc) from None
            raise
        return ContainerHandle(container, output, spec, image)

    async def stream(self, handle: ContainerHandle, sink: LineSink) -> None:
        handle.sink = sink
        splitters = {fileno: LineSplitter() for fileno in _STREAMS}
        while True:
            try:
                message = await handle.output.read_out()
            except (aiohttp.ClientError, OSError) as exc:
                log.warning("output stream of job %s broke: %s", handle.spec.job_id, exc)
                break
            if message is None:
                break
            stream = _STREAMS.get(message.stream)
            if stream is None:
                continue
            for line in splitters[message.stream].feed(message.data):
                await sink(stream, line)
        for fileno, splitter in splitters.items():
            for line in splitter.flush():
                await sink(_STREAMS[fileno], line)

    async def wait(self, handle: ContainerHandle) -> int:
        try:
            result = await handle.container.wait()
        except _ENGINE_ERRORS as exc:
            raise _engine_error("lost the container while waiting for it", exc) from None
        code = int(result.get("StatusCode", -1))
        if code == 137:
            await self._explain_kill(handle)
        return code

    async def terminate(self, handle: ContainerHandle) -> None:
        await _signal(handle.container, "SIGTERM")

    async def kill(self, handle: ContainerHandle) -> None:
        await _signal(handle.container, "SIGKILL")

    async def cleanup(self, handle: ContainerHandle) -> None:
        with contextlib.suppress(Exception):
            await handle.output.close()
        await _remove(handle.container)

    # -- helpers --------------------------------------------------------------------------------

    async def _create(
        self, docker: aiodocker.Docker, config: dict[str, Any], name: str, image: str
    ) -> DockerContainer:
        try:
            return await self._create_once(docker, config, name)
        except DockerError as exc:
            if exc.status != 404:
                raise _engine_error("cannot create the container", exc) from None
        except _ENGINE_ERRORS as exc:
            raise _engine_error("cannot create the container", exc) from None
        # 404 on create: the image is missing. Pull it (bounded), then try once more.
        await pull_image(docker, image, self.pull_timeout_s)
        try:
            return await self._create_once(docker, config, name)
        except _ENGINE_ERRORS as exc:
            raise _engine_error("cannot create the container", exc) from None

    async def _create_once(
        self, docker: aiodocker.Docker, config: dict[str, Any], name: str
    ) -> DockerContainer:
        try:
            async with asyncio.timeout(DOCKER_CALL_TIMEOUT_S):
                return await docker.containers.create(config, name=name)
        except DockerError:
            raise
        except TimeoutError:
            # A create that timed out may still happen on the engine: remove it by name.
            await asyncio.shield(_remove(docker.containers.container(name)))
            raise ExecutorError(
                f"the Docker engine did not create the container within {DOCKER_CALL_TIMEOUT_S:g} s"
            ) from None
        except BaseException:
            await asyncio.shield(_remove(docker.containers.container(name)))
            raise

    async def _explain_kill(self, handle: ContainerHandle) -> None:
        """Exit 137 is SIGKILL: say so when the kernel's OOM killer did it.

        The engine handles the exit and the OOM event separately, so the wait can answer
        before `OOMKilled` is set: look a few times over a short while before deciding.
        """
        with contextlib.suppress(*_ENGINE_ERRORS, TimeoutError):
            async with asyncio.timeout(5):
                for _ in range(OOM_FLAG_CHECKS):
                    info = await handle.container.show()
                    if info.get("State", {}).get("OOMKilled"):
                        break
                    await asyncio.sleep(OOM_FLAG_INTERVAL_S)
            if info.get("State", {}).get("OOMKilled") and handle.sink is not None:
                limit_mb = info.get("HostConfig", {}).get("Memory", 0) // (1024 * 1024)
                await handle.sink(
                    LogStream.system, f"the job was killed: out of memory (limit {limit_mb} MiB)"
                )


def check_runtime_volume(settings: Any) -> str | None:
    """CRONIUM_RUNTIME_VOLUME, once its content is known to be the socket alone.

    A volume is mounted whole into every job: refuse to start when the socket's directory
    (where this process sees the volume) holds anything else, rather than show it to jobs.
    """
    volume: str | None = getattr(settings, "runtime_volume", None)
    if not volume:
        return None
    socket_path = settings.runtime_socket_path
    try:
        others = sorted(set(os.listdir(socket_path.parent)) - {socket_path.name})
    except FileNotFoundError:
        return volume  # created empty when the socket is bound
    if others:
        shown = ", ".join(others[:10]) + (
            f" and {len(others) - 10} more" if len(others) > 10 else ""
        )
        raise ConfigError(
            f"CRONIUM_RUNTIME_VOLUME={volume}: every job container mounts it, but the runtime "
            f"socket's directory {socket_path.parent} holds more than the socket ({shown}); "
            "give the socket a volume of its own"
        )
    return volume


def job_labels(spec: JobSpec, node_id: str | None) -> dict[str, str]:
    labels = {
        LABEL_EXECUTION: str(spec.execution_id),
        LABEL_JOB: str(spec.job_id),
        LABEL_EVENT: str(spec.event_id),
    }
    if node_id:
        labels[LABEL_NODE] = node_id
    if spec.installation_id:
        labels[LABEL_INSTALLATION] = spec.installation_id
    return labels


async def remove_orphans(
    docker: aiodocker.Docker,
    is_job_running: Callable[[int], Awaitable[bool]],
    *,
    installation_id: str,
    live_nodes: Collection[str] | None = None,
) -> int:
    """Remove Cronium job containers (and their volumes) whose job no longer runs.

    Call at node start (and, cheaply, now and then): a node that died leaves its containers
    behind. `is_job_running(job_id)` must answer True only while a live node still runs that
    job (status `running` and its lease not expired). With `live_nodes` (e.g. the lease
    owners of running jobs), a container whose `cronium.node` label names another node goes
    too, even when its job runs: that is an older attempt of a retried job. Every other
    labelled container is kept. Dangling labelled volumes are removed. Returns the number of
    containers removed; one container that cannot be removed is logged, never raised.
    """
    # Only this installation's containers: others may share the engine.
    wanted = [LABEL_JOB, f"{LABEL_INSTALLATION}={installation_id}"]
    containers = await docker.containers.list(all=True, filters=json.dumps({"label": wanted}))
    removed = 0
    for container in containers:
        labels = container._container.get("Labels") or {}
        try:
            job_id = int(labels[LABEL_JOB])
        except (KeyError, ValueError):
            continue
        node = labels.get(LABEL_NODE)
        stale_attempt = live_nodes is not None and node is not None and node not in live_nodes
        if not stale_attempt and await is_job_running(job_id):
            continue
        if await _remove(container):
            removed += 1
            log.info(
                "removed leftover container %s of job %s (node %s)",
                container.id[:12],
                job_id,
                node or "?",
                extra={"action": "container_orphan_removed"},
            )
    await _remove_dangling_volumes(docker)
    return removed


async def remove_node_containers(docker: aiodocker.Docker, node_id: str) -> int:
    """Force-remove every job container started by node `node_id`.

    Recovery calls this with the lost lease owner: the dead node's containers go, while a
    retry of the same job on another node (another `cronium.node` label) keeps running.
    """
    return await _remove_labelled(docker, f"{LABEL_NODE}={node_id}")


async def remove_job_containers(docker: aiodocker.Docker, job_id: int) -> int:
    """Force-remove every container of job `job_id`, whichever attempt or node started it."""
    return await _remove_labelled(docker, f"{LABEL_JOB}={job_id}")


async def _remove_labelled(docker: aiodocker.Docker, label: str) -> int:
    containers = await docker.containers.list(all=True, filters=json.dumps({"label": [label]}))
    removed = 0
    for container in containers:
        if await _remove(container):
            removed += 1
    return removed


async def _remove_dangling_volumes(docker: aiodocker.Docker) -> None:
    with contextlib.suppress(*_ENGINE_ERRORS):
        found = await docker.volumes.list(  # type: ignore[no-untyped-call]
            filters={"label": [LABEL_JOB], "dangling": ["true"]}
        )
        for volume in found.get("Volumes") or []:
            with contextlib.suppress(*_ENGINE_ERRORS):
                await DockerVolume(docker, volume["Name"]).delete()  # type: ignore[no-untyped-call]


async def _remove(container: DockerContainer) -> bool:
    """Force-remove a container and its anonymous volumes; True when it is gone. Never raises."""
    try:
        async with asyncio.timeout(DOCKER_CALL_TIMEOUT_S):
            await container.delete(force=True, v=True)
    except DockerError as exc:
        if exc.status == 404:
            return True
        if exc.status == 409 and "already in progress" in str(exc.message):
            return True
        log.warning("could not remove container %s: %s", container.id[:12], exc.message)
        return False
    except Exception as exc:
        reason = str(exc) or type(exc).__name__
        log.warning("could not remove container %s: %s", container.id[:12], reason)
        return False
    return True


async def _signal(container: DockerContainer, signal: str) -> None:
    try:
        async with asyncio.timeout(DOCKER_CALL_TIMEOUT_S):
            await container.kill(signal=signal)
    except DockerError as exc:
        if exc.status not in (404, 409):  # gone already / not running any more
            log.warning(
                "could not send %s to container %s: %s", signal, container.id[:12], exc.message
            )
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        log.warning("could not send %s to container %s: %s", signal, container.id[:12], exc)


def _engine_error(what: str, exc: BaseException) -> ExecutorError:
    if isinstance(exc, DockerError):
        message = exc.message if isinstance(exc.message, str) else json.dumps(exc.message)
        # 400: the request itself is wrong (unknown runtime, bad limit): retrying cannot help.
        return ExecutorError(f"{what}: {message.strip()}", permanent=exc.status == 400)
    reason = str(exc) or type(exc).__name__
    return ExecutorError(f"{what}: the Docker engine is not reachable ({reason})")


def _tar(files: Mapping[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    now = int(time.time())
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        directories: set[str] = set()
        for path, content in sorted(files.items()):
            parts = path.strip("/").split("/")
            for depth in range(1, len(parts)):
                directory = "/".join(parts[:depth])
                if directory not in directories:
                    directories.add(directory)
                    info = tarfile.TarInfo(directory)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, now
                    archive.addfile(info)
            info = tarfile.TarInfo("/".join(parts))
            info.size, info.mode, info.mtime = len(content), 0o644, now
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()

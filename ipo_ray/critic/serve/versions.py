"""Critic versions: which folder a name means, loading new ones into running replicas, swapping.

A small detached Ray actor (`VersionRegistry`, one per app) holds {name: folder} and a revision
number. Every replica long-polls it (`VersionSet.follow`); when a name is added or re-pointed, the
replica loads the new engine in a worker thread while its current engines keep answering, then
swaps it in, and retires a replaced engine once its in-flight requests are done. Nothing restarts.
`register_version` is what the main loop calls: it registers the folder and waits until every
running replica reports the version ready (or one reports it failed).

Why not Serve's `user_config` + `reconfigure`: redeploying from Python (`serve.run`) gives the
deployment a new random code version in Ray 2.60, which restarts replicas instead of reconfiguring
them; lightweight updates need the declarative config API.
"""

import asyncio
import contextlib
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import ray

from ipo_ray.critic.adapters import is_adapter, read_adapter
from ipo_ray.critic.serve.inputs import InputError
from ipo_ray.critic.serve.schemas import VERSION_PATTERN

NAMESPACE = "ipo_ray"
DEPLOYMENT = "CriticServer"
_POLL_S = 10.0


def registry_name(app_name: str) -> str:
    """The registry actor's name for a Serve app."""
    return f"critic-versions-{app_name}"


def resolve_version_path(path: str) -> Path:
    """The folder of a critic version: a full critic folder, or a LoRA adapter folder whose base is one.

    Raises:
        FileNotFoundError: neither (no config.json, no adapter_config.json).
        AdapterError: an adapter folder that names no usable base (`ipo_ray.critic.adapters`).
    """
    if is_adapter(path):
        return read_adapter(path).path
    return resolve_critic_path(path)


def resolve_critic_path(path: str | None) -> Path:
    """The folder of a critic: `path`, or the shipped world critic when None.

    Raises:
        FileNotFoundError: the folder or its config.json is missing (the world critic ships once
            `jobs/train_critic.py` has written ipo_ray/assets/world_critic/).
    """
    folder = Path(path) if path is not None else Path(str(files("ipo_ray") / "assets" / "world_critic"))
    if not (folder / "config.json").is_file():
        what = "the shipped world critic" if path is None else "critic folder"
        raise FileNotFoundError(
            f"{what} {folder} has no config.json; set critic.path to a critic folder "
            "(ipo_ray.critic.model.build_critic or jobs/train_critic.py writes one)"
        )
    return folder.resolve()


@ray.remote(num_cpus=0)
class VersionRegistry:
    """{name: folder} shared by an app's replicas, plus which replica has loaded what."""

    def __init__(self, versions: dict[str, str]) -> None:
        self._versions = dict(versions)
        self._revision = 0
        self._changed = asyncio.Condition()
        self._reports: dict[tuple[str, str], dict[str, str | None]] = {}

    async def register(self, name: str, path: str) -> int:
        """Adds or re-points a version; returns the new revision."""
        async with self._changed:
            self._versions[name] = path
            # Reports from an earlier registration of the same (name, folder) say nothing about this one.
            self._reports.pop((name, path), None)
            self._revision += 1
            self._changed.notify_all()
            return self._revision

    async def watch(self, seen: int, timeout_s: float) -> tuple[int, dict[str, str]]:
        """Returns (revision, versions) once the revision passes `seen`, or after `timeout_s`."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait_for(lambda: self._revision > seen), timeout_s)
            return self._revision, dict(self._versions)

    def report(self, replica: str, name: str, path: str, error: str | None) -> None:
        """A replica says it loaded `name` from `path` (error None) or failed to."""
        self._reports.setdefault((name, path), {})[replica] = error

    def reports(self, name: str, path: str) -> dict[str, str | None]:
        """Replica → None (ready) or its load error, for one (name, folder)."""
        return dict(self._reports.get((name, path), {}))


def get_registry(app_name: str, versions: dict[str, str]) -> Any:  # noqa: ANN401 - an ActorHandle
    """The app's registry, created detached (it outlives the driver, like Serve) if it is missing."""
    return VersionRegistry.options(
        name=registry_name(app_name), namespace=NAMESPACE, lifetime="detached", get_if_exists=True
    ).remote(versions)


def register_version(name: str, path: str | Path, app_name: str = "critic", timeout_s: float = 300.0) -> None:
    """Loads critic `name` from folder `path` into a running app, without stopping it.

    Requests keep being answered by the loaded versions meanwhile; re-registering a name swaps its
    engine once the new one is ready. Call from a process connected to the app's Ray cluster.

    Args:
        name: Version name clients pass as ``version`` (``default`` re-points the default).
        path: Critic folder, or a LoRA adapter folder of the default critic (needs
            ``serve.max_lora_rank``), readable by the replicas (same path on every node).
        app_name: The Serve app (`serve.app_name`).
        timeout_s: How long to wait for every running replica to load it.

    Raises:
        FileNotFoundError: `path` is not a critic folder.
        AdapterError: `path` is an adapter folder without a usable base.
        RuntimeError: a replica failed to load it (its error is quoted).
        TimeoutError: not every replica was ready in time.
    """
    from ray import serve

    if not re.match(VERSION_PATTERN, name):
        raise ValueError(f"version name {name!r} must match {VERSION_PATTERN}")
    folder = str(resolve_version_path(str(path)))
    registry = ray.get_actor(registry_name(app_name), namespace=NAMESPACE)
    ray.get(registry.register.remote(name, folder))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        reports = ray.get(registry.reports.remote(name, folder))
        failed = {replica: error for replica, error in reports.items() if error is not None}
        if failed:
            raise RuntimeError(f"critic version {name!r} from {folder} failed to load: {failed}")
        running = serve.status().applications[app_name].deployments[DEPLOYMENT].replica_states
        if reports and len(reports) >= running.get("RUNNING", 0):
            return
        time.sleep(0.2)
    raise TimeoutError(f"critic version {name!r} not ready on every replica after {timeout_s} s")


@dataclass
class _Version:
    """One loaded (or loading) version in a replica."""

    path: str
    engine: Any = None  # an engine.Engine once ready
    error: str | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    in_flight: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def state(self) -> str:
        if self.error is not None:
            return "failed"
        return "ready" if self.ready.is_set() else "loading"


class VersionSet:
    """A replica's engines by version name.

    Args:
        load: Coroutine function building an engine (an `engine.Engine`) from a folder.
        replica: This replica's id, for the registry's reports.
    """

    def __init__(self, load: Callable[[str], Awaitable[Any]], replica: str | None = None) -> None:
        self._load = load
        self.replica = replica or uuid.uuid4().hex
        self._versions: dict[str, _Version] = {}
        # (name, folder) loads that failed: not retried on every registry poll.
        self._failed: dict[tuple[str, str], str] = {}

    def add_ready(self, name: str, path: str, engine: Any) -> None:  # noqa: ANN401 - an engine.Engine
        """Adds a version whose engine is already loaded (the replica's initial versions)."""
        version = _Version(path, engine=engine)
        version.ready.set()
        self._versions[name] = version

    def ready_version(self, name: str) -> tuple[str, Any] | None:
        """(folder, engine) of version `name` when it is loaded and ready; else None."""
        version = self._versions.get(name)
        if version is None or version.state != "ready":
            return None
        return version.path, version.engine

    def describe(self) -> list[tuple[str, str, str, str | None]]:
        """(name, folder, state, error) of every version."""
        return [(n, v.path, v.state, v.error) for n, v in sorted(self._versions.items())]

    def ready_count(self) -> int:
        """Versions ready to answer."""
        return sum(v.state == "ready" for v in self._versions.values())

    @contextlib.asynccontextmanager
    async def use(self, name: str) -> AsyncIterator[Any]:
        """The engine of version `name` for the duration of one request.

        Raises:
            InputError: 404 unknown version; 503 it failed to load.
        """
        version = self._versions.get(name)
        if version is None:
            raise InputError(404, f"unknown critic version {name!r}; GET /v1/models lists them")
        await version.ready.wait()
        if version.error is not None:
            raise InputError(503, f"critic version {name!r} failed to load: {version.error}")
        version.in_flight += 1
        version.idle.clear()
        try:
            yield version.engine
        finally:
            version.in_flight -= 1
            if version.in_flight == 0:
                version.idle.set()

    async def follow(self, registry: Any) -> None:  # noqa: ANN401 - an ActorHandle
        """Forever: wait for registry changes, load new or re-pointed versions, swap them in."""
        seen = -1
        while True:
            try:
                seen, versions = await registry.watch.remote(seen, _POLL_S)
            except ray.exceptions.RayError:
                await asyncio.sleep(1.0)  # registry restarting; the loaded versions keep serving
                continue
            for name, path in versions.items():
                current = self._versions.get(name)
                if (name, path) in self._failed:
                    registry.report.remote(self.replica, name, path, self._failed[name, path])
                elif current is None or current.path != path:
                    await self._load_and_swap(registry, name, path)
                else:
                    registry.report.remote(self.replica, name, path, current.error)

    async def _load_and_swap(self, registry: Any, name: str, path: str) -> None:  # noqa: ANN401
        old = self._versions.get(name)
        fresh = _Version(path)
        if old is None:
            self._versions[name] = fresh  # visible as "loading"; requests for it wait
        try:
            fresh.engine = await self._load(path)
        except Exception as error:  # noqa: BLE001 - reported to the caller of register_version
            fresh.error = f"{type(error).__name__}: {error}"
            self._failed[name, path] = fresh.error
        fresh.ready.set()
        if old is not None and fresh.error is None:
            self._versions[name] = fresh
            asyncio.get_running_loop().create_task(_retire(old))
        registry.report.remote(self.replica, name, path, fresh.error)

    def close(self) -> None:
        """Stops every engine."""
        for version in self._versions.values():
            if version.engine is not None:
                version.engine.close()


async def _retire(version: _Version) -> None:
    # Requests that took the old engine before the swap finish on it; then it stops.
    if version.in_flight:
        await version.idle.wait()
    version.engine.close()

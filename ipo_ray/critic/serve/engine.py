"""A replica's vLLM engines, all driven by one thread, so concurrent HTTP requests share running batches.

Why one thread for every engine (every critic version): vLLM's CPU engine is not thread-safe across
engines. Loading a second engine in a worker thread while the first one stepped in another thread
corrupted the heap here (``malloc(): invalid size``, replica killed by SIGABRT, 1 run in 4), so
loads, steps and aborts of all engines happen on this thread only. A load therefore pauses
answering for its duration (1–3 s for the world critic on CPU); requests wait, none fail.

Why not vLLM's `AsyncLLM`: in vLLM 0.32 it always runs the engine core in a separate process (20–45 s
to start on CPU, one process per version), while the in-process engine starts in ~3 s. Why not
`LLM.generate` per request: it blocks until its whole batch is done, so a request arriving meanwhile
would wait for the next call. Instead the thread loops: take every queued command (new request,
abort, load, unload), run one step of each engine that has work, hand finished outputs back to the
waiting coroutines. New requests join the running batch at the next step (continuous batching),
and the event loop never blocks on a model.

Outputs are requested final-only (`RequestOutputKind.FINAL_ONLY`): a request's n samples come back
together in one output (streamed outputs were seen to hold fewer than n, ../shared/notes/cpu-stack.md).

A LoRA adapter version (`ipo_ray.critic.adapters`) is an `Engine` handle on its base's engine with a
`LoRARequest` attached to each of its requests: no engine of its own, and its requests join the base
engine's running batches. The host counts the handles of each engine and retires it after the last.
"""

import asyncio
import queue
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from vllm.lora.request import LoRARequest
from vllm.sampling_params import RequestOutputKind, SamplingParams

from ipo_ray.critic.judge import CriticRequest, Sampled
from ipo_ray.critic.vllm_backend import VllmBackend, first_logprobs


@dataclass
class _Job:
    request_id: str
    backend: VllmBackend
    prompt: dict[str, Any]
    params: SamplingParams
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    lora: LoRARequest | None = None
    read_first: bool = False  # asked with logprobs: hand back the first token's too


@dataclass
class _Abort:
    request_id: str


@dataclass
class _Load:
    build: Callable[[], VllmBackend]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


@dataclass
class _Unload:
    backend: VllmBackend


_STOP = object()


class EngineHost:
    """The thread that owns every engine of a replica; `load` gives an `Engine` handle per version."""

    def __init__(self) -> None:
        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._engines: list[VllmBackend] = []
        # Unloaded engines stay referenced: in-process vLLM engines share global parallel state, and
        # freeing one tore it down under the others ("pipeline model parallel group is not
        # initialized"). A replaced version therefore keeps its memory until the replica restarts.
        self._retired: list[VllmBackend] = []
        self._jobs: dict[str, _Job] = {}
        # Engine handles per backend (a base and its adapter versions); touched on the event loop only.
        self._handles: dict[int, int] = {}
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="critic-engines", daemon=True)
        self._thread.start()

    async def load(self, build: Callable[[], VllmBackend]) -> "Engine":
        """Builds an engine on the engine thread (other engines pause meanwhile) and returns its handle.

        Raises:
            Whatever `build` raises (e.g. a folder vLLM cannot load).
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._put(_Load(build, loop, future))
        backend = await future
        self._handles[id(backend)] = 1
        return Engine(self, backend)

    def share(self, backend: VllmBackend, lora: LoRARequest) -> "Engine":
        """Another handle on a loaded engine, whose requests carry `lora` (an adapter version)."""
        if self._handles.get(id(backend), 0) < 1:
            raise RuntimeError("that engine is not loaded (or already retired)")
        self._handles[id(backend)] += 1
        return Engine(self, backend, lora)

    async def sample(
        self,
        backend: VllmBackend,
        requests: Sequence[CriticRequest],
        n: int,
        lora: LoRARequest | None = None,
        top_logprobs: int = 0,
    ) -> list[Sampled]:
        """n sampled answer texts per request, in request order, and with ``top_logprobs > 0`` the
        first token's most likely tokens, from a 1-token request per prompt sent once the samples
        are done (`VllmBackend.read_params`: the prompt is then in the prefix cache); see
        `Engine.sample`."""
        params = backend.sampling_params(n, output_kind=RequestOutputKind.FINAL_ONLY)
        sampled = await self._submit(backend, requests, params, lora, read_first=False)
        if top_logprobs <= 0:
            return sampled
        read = backend.read_params(top_logprobs, output_kind=RequestOutputKind.FINAL_ONLY)
        firsts = await self._submit(backend, requests, read, lora, read_first=True)
        return [Sampled(s.texts, f.first_logprobs) for s, f in zip(sampled, firsts, strict=True)]

    async def _submit(
        self,
        backend: VllmBackend,
        requests: Sequence[CriticRequest],
        params: SamplingParams,
        lora: LoRARequest | None,
        read_first: bool,
    ) -> list[Sampled]:
        loop = asyncio.get_running_loop()
        jobs = [
            _Job(
                uuid.uuid4().hex,
                backend,
                backend.prompt(r),
                params,
                loop,
                loop.create_future(),
                lora,
                read_first,
            )
            for r in requests
        ]
        for job in jobs:
            self._put(job)
        try:
            return list(await asyncio.gather(*(job.future for job in jobs)))
        except asyncio.CancelledError:
            # The caller gave up (client gone, request timed out): free the engine of the work, or
            # a client's retry would run next to its own abandoned duplicate.
            for job in jobs:
                self._inbox.put(_Abort(job.request_id))
            raise

    @property
    def error(self) -> BaseException | None:
        """Why the engine thread stopped; None while it runs."""
        return self._error

    def unload(self, backend: VllmBackend) -> None:
        """Drops one handle of an engine; after the last, stops stepping it (its memory is kept)."""
        left = self._handles.get(id(backend), 0) - 1
        if left > 0:
            self._handles[id(backend)] = left
            return
        self._handles.pop(id(backend), None)
        self._inbox.put(_Unload(backend))

    def close(self) -> None:
        """Stops the thread after the current step; requests still queued fail."""
        self._inbox.put(_STOP)
        self._thread.join(timeout=30)

    def _put(self, item: Any) -> None:  # noqa: ANN401 - one of the command dataclasses
        if self._error is not None:
            raise RuntimeError(f"critic engines stopped: {self._error}")
        self._inbox.put(item)

    def _run(self) -> None:
        try:
            while True:
                # Block only when no engine has work; otherwise take what is queued and step.
                busy = any(b.engine.llm_engine.has_unfinished_requests() for b in self._engines)
                try:
                    item = self._inbox.get(block=not busy)
                except queue.Empty:
                    item = None
                while item is not None:
                    self._handle(item)
                    try:
                        item = self._inbox.get_nowait()
                    except queue.Empty:
                        item = None
                for backend in self._engines:
                    engine = backend.engine.llm_engine
                    if engine.has_unfinished_requests():
                        for output in engine.step():
                            if output.finished:
                                self._finish(output)
        except Exception as error:  # noqa: BLE001 - every waiting request must hear of it, not hang
            self._error = error
            self._fail_all(error)

    def _handle(self, item: Any) -> None:  # noqa: ANN401 - one of the command dataclasses
        if item is _STOP:
            raise RuntimeError("engines closed")
        if isinstance(item, _Job):
            try:
                item.backend.engine.llm_engine.add_request(
                    item.request_id, item.prompt, item.params, lora_request=item.lora
                )
            except (ValueError, TypeError) as error:
                _resolve(
                    item.loop, item.future, error=ValueError(f"critic engine refused the request: {error}")
                )
                return
            self._jobs[item.request_id] = item
        elif isinstance(item, _Abort):
            job = self._jobs.pop(item.request_id, None)
            if job is not None:
                job.backend.engine.llm_engine.abort_request([item.request_id])
        elif isinstance(item, _Load):
            try:
                backend = item.build()
            except Exception as error:  # noqa: BLE001 - the loader's caller reports it
                _resolve(item.loop, item.future, error=error)
                return
            self._engines.append(backend)
            _resolve(item.loop, item.future, result=backend)
        elif isinstance(item, _Unload):
            self._engines = [b for b in self._engines if b is not item.backend]
            self._retired.append(item.backend)

    def _finish(self, output: Any) -> None:  # noqa: ANN401 - vLLM's RequestOutput
        job = self._jobs.pop(output.request_id, None)
        if job is None:  # aborted meanwhile
            return
        (texts,) = job.backend.decode([output])
        first = first_logprobs(output) if job.read_first else {}
        _resolve(job.loop, job.future, result=Sampled(texts, first))

    def _fail_all(self, error: BaseException) -> None:
        waiting: list[_Job | _Load] = list(self._jobs.values())
        self._jobs.clear()
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Job | _Load):
                waiting.append(item)
        for item in waiting:
            _resolve(item.loop, item.future, error=RuntimeError(f"critic engines stopped: {error}"))


class Engine:
    """One loaded critic version: a `VllmBackend` served by the host's thread, with the version's
    LoRA adapter when it is one.

    Args:
        host: The thread that owns it.
        backend: The engine.
        lora: The adapter every request of this version carries; None for a full checkpoint.
    """

    def __init__(self, host: EngineHost, backend: VllmBackend, lora: LoRARequest | None = None) -> None:
        self.host = host
        self.backend = backend
        self.lora = lora

    def with_adapter(self, lora: LoRARequest) -> "Engine":
        """A handle on this engine for an adapter version (its base must be this engine's model)."""
        return self.host.share(self.backend, lora)

    @property
    def tokenizer(self) -> Any:  # noqa: ANN401 - the critic's HF tokenizer
        """The version's tokenizer (an adapter version shares its base's)."""
        return self.backend.tokenizer

    async def generate(self, requests: Sequence[CriticRequest], n: int) -> list[list[str]]:
        """n sampled answer texts per request, in request order (as `judge.CriticBackend.generate`).

        Raises:
            RuntimeError: the engine thread has died (every later call fails the same way).
            ValueError: the engine refused a request (e.g. a prompt longer than max_model_len).
        """
        return [s.texts for s in await self.sample(requests, n)]

    async def sample(self, requests: Sequence[CriticRequest], n: int, top_logprobs: int = 0) -> list[Sampled]:
        """As `generate`, with each request's first-token log-probabilities when ``top_logprobs > 0``
        (as `judge.FirstTokenBackend.sample`); same errors."""
        return await self.host.sample(self.backend, requests, n, self.lora, top_logprobs)

    def close(self) -> None:
        """Retires this handle, and the engine with its last handle; call once no request uses it."""
        self.host.unload(self.backend)


def _resolve(
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[Any],
    result: Any = None,  # noqa: ANN401 - texts or a backend
    error: BaseException | None = None,
) -> None:
    def settle() -> None:
        if future.done():  # the caller gave up (cancelled); nothing to deliver
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    loop.call_soon_threadsafe(settle)

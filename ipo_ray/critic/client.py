"""HTTP clients of the critic's Serve app: timeouts, retries with backoff, a cap on requests in flight.

    with CriticClient("http://127.0.0.1:8000", token=os.environ.get("IPO_RAY_CRITIC_TOKEN")) as critic:
        result = critic.score("A red circle moves left.", "runs/r1/videos/c0.mp4")          # by path
        result = critic.score("A red circle moves left.", "local/c0.mp4", upload=True)       # uploaded

`CriticClient` is safe to share between threads; `AsyncCriticClient` is its asyncio twin. Both
retry connection errors, timeouts and 5xx answers (a replica restarting, an overloaded proxy) with
exponential backoff and jitter, then raise `CriticUnavailableError` naming the last problem; a 4xx
is the request's fault and raises `CriticHTTPError` at once, never retried.
"""

import asyncio
import random
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx


class CriticError(RuntimeError):
    """Base of the client's errors."""


class CriticHTTPError(CriticError):
    """The app refused the request (4xx): `status` and the server's `detail`."""

    def __init__(self, status: int, detail: Any) -> None:  # noqa: ANN401 - the server's JSON detail
        super().__init__(f"critic answered {status}: {detail}")
        self.status = status
        self.detail = detail


class CriticUnavailableError(CriticError):
    """No answer after every retry (connection errors, timeouts or 5xx)."""


class _Policy:
    """What both clients share: request bodies, which failures to retry, the backoff schedule.

    Args:
        retries: Retries after the first attempt.
        backoff_s: First delay; doubles each retry.
        max_backoff_s: Cap on one delay.
    """

    def __init__(self, retries: int, backoff_s: float, max_backoff_s: float) -> None:
        if retries < 0 or backoff_s < 0 or max_backoff_s < backoff_s:
            raise ValueError("need retries ≥ 0 and 0 ≤ backoff_s ≤ max_backoff_s")
        self.retries, self.backoff_s, self.max_backoff_s = retries, backoff_s, max_backoff_s

    def delay(self, attempt: int) -> float:
        """Seconds before retry `attempt` (0-based): exponential, capped, jittered to 50–100%.

        Jitter keeps many clients that failed together from retrying together.
        """
        return min(self.max_backoff_s, self.backoff_s * 2**attempt) * random.uniform(0.5, 1.0)

    @staticmethod
    def body(
        prompt: str,
        videos: dict[str, str | Path],
        upload: bool,
        options: dict[str, Any],
    ) -> dict[str, Any]:
        """httpx keyword arguments: JSON with ``<field>_path``s, or a form with the files' bytes."""
        fields = {k: v for k, v in options.items() if v is not None}
        if not upload:
            return {"json": {"prompt": prompt, **{f"{k}_path": str(v) for k, v in videos.items()}, **fields}}
        # Read once: a retry resends the same bytes without reopening the file.
        files = {k: (Path(v).name, Path(v).read_bytes(), "video/mp4") for k, v in videos.items()}
        # Form fields are text; a list becomes one field per item (how the app reads `dimensions`).
        data: dict[str, Any] = {"prompt": prompt}
        for key, value in fields.items():
            if isinstance(value, bool):
                data[key] = "true" if value else "false"
            else:
                data[key] = [str(v) for v in value] if isinstance(value, list) else str(value)
        return {"data": data, "files": files}

    @staticmethod
    def result(response: httpx.Response) -> dict[str, Any] | None:
        """The JSON body of a 2xx; None for a 5xx (retry); raises for a 4xx."""
        if response.status_code >= 500:
            return None
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail")
            except ValueError:
                detail = response.text
            raise CriticHTTPError(response.status_code, detail)
        return response.json()


def _options(version: str | None, samples: int | None, dimensions: Sequence[str] | None) -> dict[str, Any]:
    return {"version": version, "samples": samples, "dimensions": list(dimensions) if dimensions else None}


class CriticClient:
    """Blocking client; share one between threads (httpx.Client is thread-safe).

    Args:
        url: The app's base URL, e.g. ``http://127.0.0.1:8000`` (plus the route prefix, if any).
        token: Bearer token when the app has auth on.
        timeout_s: Per-attempt timeout (connect, read, write, pool).
        retries: Retries after the first attempt on connection errors, timeouts and 5xx.
        backoff_s: First retry delay in seconds; doubles each retry, jittered.
        max_backoff_s: Cap on one delay.
        max_in_flight: Requests at once across all threads; more wait for a free slot.
        transport: An httpx transport (tests).
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        timeout_s: float = 120.0,
        retries: int = 4,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        max_in_flight: int = 16,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be ≥ 1, got {max_in_flight}")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        limits = httpx.Limits(max_connections=max_in_flight, max_keepalive_connections=max_in_flight)
        self._http = httpx.Client(
            base_url=url, headers=headers, timeout=timeout_s, limits=limits, transport=transport
        )
        self._policy = _Policy(retries, backoff_s, max_backoff_s)
        self._slots = threading.BoundedSemaphore(max_in_flight)

    def score(
        self,
        prompt: str,
        video: str | Path,
        upload: bool = False,
        version: str | None = None,
        samples: int | None = None,
        dimensions: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """POST /v1/score. `video` is a path under the server's allowed root, or a local file to upload."""
        body = _Policy.body(prompt, {"video": video}, upload, _options(version, samples, dimensions))
        return self._call("POST", "/v1/score", body)

    def compare(
        self,
        prompt: str,
        video_a: str | Path,
        video_b: str | Path,
        upload: bool = False,
        version: str | None = None,
        samples: int | None = None,
        dimensions: Sequence[str] | None = None,
        both_orders: bool | None = None,
    ) -> dict[str, Any]:
        """POST /v1/compare of videos A and B (paths on the server, or local files to upload).

        `both_orders` also asks with B shown first and pools the answers (None: the server's default).
        """
        videos = {"video_a": video_a, "video_b": video_b}
        options = _options(version, samples, dimensions) | {"both_orders": both_orders}
        body = _Policy.body(prompt, videos, upload, options)
        return self._call("POST", "/v1/compare", body)

    def models(self) -> dict[str, Any]:
        """GET /v1/models."""
        return self._call("GET", "/v1/models", {})

    def health(self) -> dict[str, Any]:
        """GET /healthz."""
        return self._call("GET", "/healthz", {})

    def _call(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        problem = ""
        for attempt in range(self._policy.retries + 1):
            if attempt:
                time.sleep(self._policy.delay(attempt - 1))
            with self._slots:
                try:
                    response = self._http.request(method, path, **body)
                except httpx.TransportError as error:
                    problem = f"{type(error).__name__}: {error}"
                    continue
            result = _Policy.result(response)
            if result is not None:
                return result
            problem = f"HTTP {response.status_code}: {response.text[:200]}"
        raise CriticUnavailableError(
            f"{method} {path} failed {self._policy.retries + 1} times; last: {problem}"
        )

    def close(self) -> None:
        """Closes the connection pool."""
        self._http.close()

    def __enter__(self) -> "CriticClient":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class AsyncCriticClient:
    """asyncio client; arguments and methods as `CriticClient` (methods are coroutines)."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        timeout_s: float = 120.0,
        retries: int = 4,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        max_in_flight: int = 16,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be ≥ 1, got {max_in_flight}")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        limits = httpx.Limits(max_connections=max_in_flight, max_keepalive_connections=max_in_flight)
        self._http = httpx.AsyncClient(
            base_url=url, headers=headers, timeout=timeout_s, limits=limits, transport=transport
        )
        self._policy = _Policy(retries, backoff_s, max_backoff_s)
        self._slots = asyncio.Semaphore(max_in_flight)

    async def score(
        self,
        prompt: str,
        video: str | Path,
        upload: bool = False,
        version: str | None = None,
        samples: int | None = None,
        dimensions: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """POST /v1/score (see `CriticClient.score`)."""
        body = _Policy.body(prompt, {"video": video}, upload, _options(version, samples, dimensions))
        return await self._call("POST", "/v1/score", body)

    async def compare(
        self,
        prompt: str,
        video_a: str | Path,
        video_b: str | Path,
        upload: bool = False,
        version: str | None = None,
        samples: int | None = None,
        dimensions: Sequence[str] | None = None,
        both_orders: bool | None = None,
    ) -> dict[str, Any]:
        """POST /v1/compare (see `CriticClient.compare`)."""
        videos = {"video_a": video_a, "video_b": video_b}
        options = _options(version, samples, dimensions) | {"both_orders": both_orders}
        body = _Policy.body(prompt, videos, upload, options)
        return await self._call("POST", "/v1/compare", body)

    async def models(self) -> dict[str, Any]:
        """GET /v1/models."""
        return await self._call("GET", "/v1/models", {})

    async def _call(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        problem = ""
        for attempt in range(self._policy.retries + 1):
            if attempt:
                await asyncio.sleep(self._policy.delay(attempt - 1))
            async with self._slots:
                try:
                    response = await self._http.request(method, path, **body)
                except httpx.TransportError as error:
                    problem = f"{type(error).__name__}: {error}"
                    continue
            result = _Policy.result(response)
            if result is not None:
                return result
            problem = f"HTTP {response.status_code}: {response.text[:200]}"
        raise CriticUnavailableError(
            f"{method} {path} failed {self._policy.retries + 1} times; last: {problem}"
        )

    async def aclose(self) -> None:
        """Closes the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncCriticClient":
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

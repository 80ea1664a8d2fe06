"""The critic's HTTP client against local stub servers: retries with backoff, timeouts, in-flight cap."""

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ipo_ray.critic.client import (
    AsyncCriticClient,
    CriticClient,
    CriticHTTPError,
    CriticUnavailableError,
)


class _Stub:
    """A loopback HTTP server whose answers the test scripts: fail `failures` times, then answer."""

    def __init__(
        self, failures: int = 0, status: int = 503, delay_s: float = 0.0, drop: bool = False
    ) -> None:
        self.failures, self.status, self.delay_s, self.drop = failures, status, delay_s, drop
        self.calls = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.bodies: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: object) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._answer()

            def do_POST(self) -> None:  # noqa: N802
                self._answer()

            def _answer(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = self.rfile.read(length)
                with stub._lock:
                    stub.calls += 1
                    call = stub.calls
                    stub.in_flight += 1
                    stub.max_in_flight = max(stub.max_in_flight, stub.in_flight)
                    stub.bodies.append((self.headers.get("content-type", ""), body))
                try:
                    time.sleep(stub.delay_s)
                    if call <= stub.failures and stub.drop:
                        self.close_connection = True
                        self.connection.shutdown(2)  # the client sees the connection die mid-request
                        return
                    status = stub.status if call <= stub.failures else 200
                    payload = json.dumps({"detail": "no"} if status >= 400 else {"ok": call}).encode()
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                finally:
                    with stub._lock:
                        stub.in_flight -= 1

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub_factory() -> Iterator:
    stubs: list[_Stub] = []

    def make(**kwargs: object) -> _Stub:
        stubs.append(_Stub(**kwargs))  # type: ignore[arg-type]
        return stubs[-1]

    yield make
    for stub in stubs:
        stub.close()


@pytest.mark.timeout(30)
def test_retries_5xx_with_backoff_then_answers(stub_factory) -> None:  # noqa: ANN001
    stub = stub_factory(failures=2, status=503)
    start = time.perf_counter()
    with CriticClient(stub.url, retries=3, backoff_s=0.2) as client:
        assert client.models() == {"ok": 3}
    # Two retries: delays ≥ 0.5·0.2 and ≥ 0.5·0.4 (jitter keeps each in [50%, 100%] of its step).
    assert stub.calls == 3 and time.perf_counter() - start >= 0.3


@pytest.mark.timeout(30)
def test_retries_dropped_connections(stub_factory) -> None:  # noqa: ANN001
    stub = stub_factory(failures=1, drop=True)
    with CriticClient(stub.url, retries=2, backoff_s=0.01) as client:
        assert client.health() == {"ok": 2}


@pytest.mark.timeout(30)
def test_clear_error_after_retries_are_spent(stub_factory) -> None:  # noqa: ANN001
    stub = stub_factory(failures=100, status=502)
    with CriticClient(stub.url, retries=2, backoff_s=0.01) as client:
        with pytest.raises(CriticUnavailableError, match=r"failed 3 times; last: HTTP 502"):
            client.models()
    assert stub.calls == 3


@pytest.mark.timeout(30)
def test_connection_refused_is_retried_then_reported() -> None:
    # Port 9 (discard) on loopback: nothing listens in the test environment.
    with CriticClient("http://127.0.0.1:9", retries=1, backoff_s=0.01) as client:
        with pytest.raises(CriticUnavailableError, match="ConnectError"):
            client.health()


@pytest.mark.timeout(30)
def test_timeouts_are_retried(stub_factory) -> None:  # noqa: ANN001
    stub = stub_factory(delay_s=0.5)
    with CriticClient(stub.url, timeout_s=0.1, retries=1, backoff_s=0.01) as client:
        with pytest.raises(CriticUnavailableError, match="ReadTimeout"):
            client.models()
    assert stub.calls == 2


@pytest.mark.timeout(30)
def test_4xx_is_not_retried(stub_factory) -> None:  # noqa: ANN001
    stub = stub_factory(failures=100, status=404)
    with CriticClient(stub.url, retries=3, backoff_s=0.01) as client:
        with pytest.raises(CriticHTTPError) as error:
            client.score("A red square.", "a.mp4", version="nope")
    assert error.value.status == 404 and error.value.detail == "no" and stub.calls == 1


@pytest.mark.timeout(30)
def test_in_flight_cap_across_threads(stub_factory) -> None:  # noqa: ANN001
    stub = stub_factory(delay_s=0.1)
    with CriticClient(stub.url, max_in_flight=2) as client:
        threads = [threading.Thread(target=client.models) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert stub.calls == 8 and stub.max_in_flight == 2


@pytest.mark.timeout(30)
def test_async_in_flight_cap_and_retries(stub_factory) -> None:  # noqa: ANN001
    stub = stub_factory(failures=1, status=503, delay_s=0.1)

    async def run() -> list[dict]:
        async with AsyncCriticClient(stub.url, max_in_flight=3, backoff_s=0.01) as client:
            return await asyncio.gather(*(client.models() for _ in range(9)))

    results = asyncio.run(run())
    assert len(results) == 9 and stub.calls == 10 and stub.max_in_flight <= 3


@pytest.mark.timeout(30)
def test_bodies_by_path_and_by_upload(stub_factory, tmp_path: Path) -> None:  # noqa: ANN001
    stub = stub_factory()
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypisom")
    with CriticClient(stub.url) as client:
        client.score("A red square.", "runs/clip.mp4", samples=4, dimensions=["faithfulness"])
        client.compare("A red square.", video, video, upload=True, version="v2", both_orders=True)
        client.compare("A red square.", "runs/a.mp4", "runs/b.mp4", both_orders=False)
    (json_type, json_body), (form_type, form_body), (_, compare_body) = stub.bodies
    assert json_type == "application/json"
    assert json.loads(json_body) == {
        "prompt": "A red square.",
        "video_path": "runs/clip.mp4",
        "samples": 4,
        "dimensions": ["faithfulness"],
    }
    assert form_type.startswith("multipart/form-data")
    assert b'name="video_a"; filename="clip.mp4"' in form_body and b"ftypisom" in form_body
    assert b'name="version"' in form_body
    assert b'name="both_orders"\r\n\r\ntrue' in form_body  # a form field the app reads as a bool
    assert json.loads(compare_body)["both_orders"] is False

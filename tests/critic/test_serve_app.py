"""The critic's Serve app end to end on a local Ray: real HTTP, real mp4 files, a tiny random critic.

One app serves the whole module (~25 s to start: Ray, Serve, vLLM's import in the replica). The
random critic answers gibberish, so answers come back unparseable: that checks the "200, marked and
counted" rule, and the schema and sample counts, never verdicts.
"""

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from transformers import AutoTokenizer

import ipo_ray
from ipo_ray.config import load_config
from ipo_ray.critic import judge
from ipo_ray.critic.judge import SamplingConfig
from ipo_ray.critic.model import build_critic
from ipo_ray.critic.tokenizer import set_judges_first
from ipo_ray.critic.voting import vote
from ipo_ray.data.video import write_mp4
from ipo_ray.local_ray import free_port
from ipo_ray.vocab import DIMENSIONS
from ipo_ray.world.annotators import make_annotators
from ipo_ray.world.render import RenderSettings
from ipo_ray.world.seed_set import build_seed_set

pytestmark = pytest.mark.slow

TOKEN = "test-token-123"
SAMPLES = 3
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PROMPT = "A red square moves right."
WORLD_CRITIC = Path(ipo_ray.__file__).parent / "assets" / "world_critic"
ROOT = Path(__file__).resolve().parents[2]


def _clip(frames: int) -> np.ndarray:
    video = np.full((frames, 16, 16, 3), (15, 20, 70), dtype=np.uint8)
    for t in range(frames):
        video[t, 6:10, t % 12 : t % 12 + 4] = (230, 40, 40)
    return video


def make_videos(root: Path) -> None:
    """Files the tests name: a clip; corrupt, fake, too long and too big ones; a symlink out."""
    root.mkdir(parents=True, exist_ok=True)
    write_mp4(root / "clip.mp4", _clip(16), fps=8)
    write_mp4(root / "still.mp4", np.repeat(_clip(1), 16, axis=0), fps=8)  # the square stands still
    write_mp4(root / "long.mp4", _clip(40), fps=8)  # over serve.max_frames=32
    clip = (root / "clip.mp4").read_bytes()
    (root / "cut.mp4").write_bytes(clip[: len(clip) // 2])
    (root / "text.mp4").write_bytes(b"this is not a video")
    (root / "big.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(200_000))  # over 0.1 MiB
    (root.parent / "secret.mp4").write_bytes(clip)
    os.symlink(root.parent / "secret.mp4", root / "escape.mp4")


def app_config(critic: Path, root: Path, port: int, **extra: str) -> object:
    """Config of the test app: small n and answers, limits the test files cross, auth on."""
    overrides = {
        "critic.path": str(critic),
        "critic.samples": str(SAMPLES),
        "critic.max_new_tokens": "8",
        "serve.allowed_root": str(root),
        "serve.port": str(port),
        "serve.auth": "true",
        "serve.max_frames": "32",
        "serve.max_upload_mb": "0.1",
        "serve.cpus_per_replica": "0.5",
        "serve.max_lora_rank": "8",  # adapter versions on the default's engine
        **extra,
    }
    return load_config(None, [f"{k}={v}" for k, v in overrides.items()])


@pytest.fixture(scope="module")
def app(critic_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(base URL, allowed root) of a running app; Ray and Serve are shut down afterwards."""
    import ray
    from ray import serve

    from ipo_ray.critic.serve.launch import start

    os.environ["RAY_AUTH_MODE"] = "disabled"
    os.environ["IPO_RAY_CRITIC_TOKEN"] = TOKEN  # replicas inherit the driver's environment locally
    root = tmp_path_factory.mktemp("serve") / "videos"
    make_videos(root)
    url = start(app_config(critic_dir, root, free_port()), num_cpus=2)
    yield url, root
    serve.shutdown()
    ray.shutdown()


@pytest.fixture(scope="module")
def http(app: tuple[str, Path]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=app[0], headers=AUTH, timeout=60) as client:
        yield client


def _check_judgement(judged: dict, answers: tuple[str, ...], samples: int = SAMPLES) -> None:
    assert set(judged["votes"]) == set(answers)
    assert judged["samples"] == samples and len(judged["answers"]) == samples
    assert sum(judged["votes"].values()) + judged["unparseable"] == samples
    assert judged["unparseable"] == sum(not a["parsed"] for a in judged["answers"])
    for answer in judged["answers"]:
        assert set(answer) == {"text", "verdict", "reason", "parsed", "problem", "swapped"}
        assert (answer["verdict"] is None) == (answer["problem"] is not None) == (not answer["parsed"])
    assert 0.0 <= judged["certainty"] <= 1.0
    # critic.vote=first_token (the default): the verdict is the first token's most likely one, if
    # any verdict token is among the engine's top tokens (a random critic's often are not).
    assert judged["read"] == "first_token"
    if judged["probabilities"]:
        assert sum(judged["probabilities"].values()) == pytest.approx(1)
        assert judged["verdict"] is None or judged["certainty"] == max(judged["probabilities"].values())
    else:
        assert judged["verdict"] is None and judged["certainty"] == 0.0


@pytest.mark.timeout(180)
def test_health_models_and_docs(http: httpx.Client) -> None:
    assert http.get("/healthz").json() == {"status": "ok", "versions_ready": 1}
    models = http.get("/v1/models").json()
    assert models["default"] == "default" and [v["state"] for v in models["versions"]] == ["ready"]
    assert http.get("/docs").status_code == 200
    assert {"/v1/score", "/v1/compare", "/v1/models", "/healthz"} <= set(
        http.get("/openapi.json").json()["paths"]
    )


@pytest.mark.timeout(180)
def test_score_by_path_and_by_upload(http: httpx.Client, app: tuple[str, Path]) -> None:
    by_path = http.post("/v1/score", json={"prompt": PROMPT, "video_path": "clip.mp4"})
    assert by_path.status_code == 200, by_path.text
    body = by_path.json()
    assert body["version"] == "default" and body["samples"] == SAMPLES
    assert set(body["dimensions"]) == {"semantic_consistency", "motion_smoothness", "faithfulness"}
    for judged in body["dimensions"].values():
        _check_judgement(judged, ("Good", "Normal", "Bad"))
        assert (judged["reward"] is None) == (judged["verdict"] is None)
    # Gibberish from a random model is returned marked, never turned into a verdict.
    assert any(not a["parsed"] for j in body["dimensions"].values() for a in j["answers"])

    with open(app[1] / "clip.mp4", "rb") as f:
        uploaded = http.post(
            "/v1/score",
            data={"prompt": PROMPT, "samples": "2", "dimensions": ["faithfulness"]},
            files={"video": ("clip.mp4", f, "video/mp4")},
        )
    assert uploaded.status_code == 200, uploaded.text
    assert list(uploaded.json()["dimensions"]) == ["faithfulness"]
    assert len(uploaded.json()["dimensions"]["faithfulness"]["answers"]) == 2


@pytest.mark.timeout(180)
def test_compare_upload_against_path(http: httpx.Client, app: tuple[str, Path]) -> None:
    with open(app[1] / "clip.mp4", "rb") as f:
        response = http.post(
            "/v1/compare",
            data={"prompt": PROMPT, "video_b_path": "clip.mp4", "dimensions": ["motion_smoothness"]},
            files={"video_a": ("a.mp4", f, "video/mp4")},
        )
    assert response.status_code == 200, response.text
    _check_judgement(response.json()["dimensions"]["motion_smoothness"], ("A", "B", "tie"))
    assert not any(a["swapped"] for a in response.json()["dimensions"]["motion_smoothness"]["answers"])

    both = http.post(
        "/v1/compare",
        json={"prompt": PROMPT, "video_a_path": "clip.mp4", "video_b_path": "clip.mp4", "both_orders": True},
    )
    assert both.status_code == 200, both.text
    assert both.json()["samples"] == 2 * SAMPLES
    for judged in both.json()["dimensions"].values():  # n answers as asked, then n asked swapped
        _check_judgement(judged, ("A", "B", "tie"), samples=2 * SAMPLES)
        assert [a["swapped"] for a in judged["answers"]] == [False] * SAMPLES + [True] * SAMPLES


def _score(path: str, **fields: object) -> dict:
    return {"json": {"prompt": PROMPT, "video_path": path, **fields}}


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    ("request_kwargs", "status", "says"),
    [
        (
            {"content": b'{"prompt": "x", ', "headers": {"content-type": "application/json"}},
            422,
            "malformed JSON",
        ),
        ({"json": {"prompt": PROMPT}}, 422, "exactly one"),
        (_score("clip.mp4", samples=0), 422, "greater than or equal"),
        (_score("clip.mp4", dimensions=["beauty"]), 422, "semantic_consistency"),
        (_score("text.mp4"), 400, "text.mp4': not a video"),
        (_score("cut.mp4"), 400, "cut.mp4': not a readable video"),
        (_score("missing.mp4"), 400, "no such file"),
        (_score("long.mp4"), 413, "40 frames"),
        (_score("big.mp4"), 413, "over the limit"),
        (_score("../secret.mp4"), 403, "'..'"),
        (_score("escape.mp4"), 403, "outside the allowed root"),
        (_score("/etc/hostname"), 403, "outside the allowed root"),
        (_score("clip.mp4", version="nope"), 404, "unknown critic version 'nope'"),
        ({"content": b"hi", "headers": {"content-type": "text/plain"}}, 415, "content type"),
    ],
)
def test_bad_input_status_codes(http: httpx.Client, request_kwargs: dict, status: int, says: str) -> None:
    response = http.post("/v1/score", **request_kwargs)
    assert response.status_code == status, response.text
    assert says in str(response.json()["detail"])


@pytest.mark.timeout(180)
def test_uploads_too_big_or_not_video(http: httpx.Client, app: tuple[str, Path]) -> None:
    big = http.post("/v1/score", data={"prompt": PROMPT}, files={"video": ("big.mp4", bytes(300_000))})
    assert big.status_code == 413, big.text
    junk = http.post("/v1/score", data={"prompt": PROMPT}, files={"video": ("x.mp4", b"GIF89a" * 10)})
    assert junk.status_code == 400 and "x.mp4" in junk.json()["detail"]
    cut = (app[1] / "cut.mp4").read_bytes()
    corrupt = http.post(
        "/v1/compare",
        data={"prompt": PROMPT, "video_a_path": "clip.mp4"},
        files={"video_b": ("cut.mp4", cut)},
    )
    assert corrupt.status_code == 400 and "video_b (cut.mp4)" in corrupt.json()["detail"]


@pytest.mark.timeout(180)
def test_auth(app: tuple[str, Path]) -> None:
    with httpx.Client(base_url=app[0], timeout=30) as anonymous:
        assert anonymous.get("/healthz").status_code == 200  # liveness stays open
        assert anonymous.get("/v1/models").status_code == 401
        missing = anonymous.post("/v1/score", json={"prompt": PROMPT, "video_path": "clip.mp4"})
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        wrong = anonymous.post(
            "/v1/score",
            json={"prompt": PROMPT, "video_path": "clip.mp4"},
            headers={"Authorization": "Bearer nope"},
        )
        assert wrong.status_code == 401


@pytest.mark.timeout(240)
def test_new_version_loads_while_requests_keep_being_answered(
    http: httpx.Client, app: tuple[str, Path], critic_dir: Path, tmp_path: Path
) -> None:
    from ipo_ray.critic.serve import register_version

    second = build_critic(tmp_path / "critic-v2", ["A blue circle."], seed=1)
    statuses: list[int] = []
    problems: list[str] = []
    stop = threading.Event()

    def stream() -> None:
        with httpx.Client(base_url=app[0], headers=AUTH, timeout=60) as client:
            while not stop.is_set():
                response = client.post(
                    "/v1/score", json={"prompt": PROMPT, "video_path": "clip.mp4", "samples": 1}
                )
                statuses.append(response.status_code)
                if response.status_code != 200:
                    problems.append(response.text[:300])

    workers = [threading.Thread(target=stream) for _ in range(3)]
    for worker in workers:
        worker.start()
    try:
        time.sleep(1.0)
        register_version("v2", second)  # a new name
        register_version("default", second)  # re-point the default: its old engine retires
        register_version("default", critic_dir)  # and back
        time.sleep(1.0)
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=60)
    assert len(statuses) >= 6 and set(statuses) == {200}, problems
    versions = {v["name"]: v for v in http.get("/v1/models").json()["versions"]}
    assert versions["v2"]["state"] == "ready" and versions["v2"]["path"] == str(second.resolve())
    assert versions["default"]["path"] == str(critic_dir.resolve())
    answered = http.post("/v1/score", json={"prompt": PROMPT, "video_path": "clip.mp4", "version": "v2"})
    assert answered.status_code == 200 and answered.json()["version"] == "v2"


@pytest.mark.timeout(180)
def test_an_adapter_version_is_served_on_the_default_engine(
    http: httpx.Client,
    critic_dir: Path,
    tmp_path: Path,
    make_adapter,  # noqa: ANN001
) -> None:
    from ipo_ray.critic.serve import register_version

    adapter = make_adapter(critic_dir, tmp_path / "lora-v2")
    register_version("lora-v2", adapter)
    versions = {v["name"]: v for v in http.get("/v1/models").json()["versions"]}
    assert versions["lora-v2"]["state"] == "ready" and versions["lora-v2"]["path"] == str(adapter.resolve())
    body = {"prompt": PROMPT, "video_path": "clip.mp4", "version": "lora-v2"}
    answered = http.post("/v1/score", json=body)
    assert answered.status_code == 200 and answered.json()["version"] == "lora-v2"
    # An adapter of another critic cannot share the default's engine: its load fails, naming why.
    other = build_critic(tmp_path / "other", ["A blue circle."], seed=3)
    with pytest.raises(RuntimeError, match="adapters are served on the default critic's engine"):
        register_version("lora-v3", make_adapter(other, tmp_path / "lora-v3"))


@pytest.fixture(scope="module")
def judge_first_version(app: tuple[str, Path], tmp_path_factory: pytest.TempPathFactory) -> str:
    """A version that declares the judge-first read: a copy of the shipped world critic (whose
    pointwise answers parse, unlike the random critic's), registered in the running app."""
    from ipo_ray.critic.serve import register_version

    folder = tmp_path_factory.mktemp("versions") / "judge-first"
    shutil.copytree(WORLD_CRITIC, folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    set_judges_first(tokenizer, True)
    tokenizer.save_pretrained(folder)
    register_version("judge-first", folder)
    return "judge-first"


@pytest.mark.timeout(240)
def test_a_judge_first_critic_judges_each_video_before_the_pair(
    http: httpx.Client, judge_first_version: str
) -> None:
    """Such a version is asked about each video first; its pairwise answers start from those voted
    verdicts, in both video orders by default."""
    request = {"prompt": PROMPT, "video_a_path": "clip.mp4", "video_b_path": "clip.mp4"}
    body = http.post("/v1/compare", json=request | {"version": judge_first_version}).json()
    assert body["read"] == "judge_first" and body["samples"] == 2 * SAMPLES
    assert set(body["judged_first"]) == set(body["dimensions"])
    for dimension, judged in body["dimensions"].items():
        _check_judgement(judged, ("A", "B", "tie"), samples=2 * SAMPLES)
        texts = [a["text"] for a in judged["answers"]]
        first = body["judged_first"][dimension]
        if None in first.values():  # no majority for a video: that dimension was asked directly
            assert not any(t.startswith("Video A:") for t in texts)
            continue
        shown = f"Video A: {first['A']}.\nVideo B: {first['B']}.\nAnswer:"
        swapped = f"Video A: {first['B']}.\nVideo B: {first['A']}.\nAnswer:"
        assert all(t.startswith(shown) for t in texts[:SAMPLES]), texts
        assert all(t.startswith(swapped) for t in texts[SAMPLES:]), texts
    assert any(None not in v.values() for v in body["judged_first"].values()), body["judged_first"]
    for judged in body["dimensions"].values():  # critic.vote=first_token: a trained critic's read
        assert judged["read"] == "first_token" and sum(judged["probabilities"].values()) == pytest.approx(1)
        # A and B are the same clip: averaged over both orders, A and B are equally likely (up to
        # the engine's batch numerics, which may still tip the verdict one way).
        assert judged["probabilities"]["A"] == pytest.approx(judged["probabilities"]["B"], abs=1e-4)
    asked = request | {"version": judge_first_version, "both_orders": False}
    one_order = http.post("/v1/compare", json=asked).json()
    assert one_order["samples"] == SAMPLES and one_order["read"] == "judge_first"
    direct = http.post("/v1/compare", json=request).json()  # the default critic reads pairs directly
    assert direct["read"] == "direct" and direct["judged_first"] is None and direct["samples"] == SAMPLES


@pytest.mark.timeout(240)
def test_the_served_verdicts_are_the_critics_first_token_read(
    http: httpx.Client, app: tuple[str, Path], judge_first_version: str
) -> None:
    """What the app answers is what the critic reads offline: the same verdicts and first-token
    probabilities as `judge.score`/`compare` on the transformers engine, given the frames the app
    samples from the same files (the first-token read both engines agree on, test_backends)."""
    from ipo_ray.critic.hf_backend import TransformersBackend
    from ipo_ray.critic.serve.inputs import VideoLimits, load_video

    cfg = app_config(WORLD_CRITIC, app[1], 8000)  # the app's settings (the port is not used here)
    limits = VideoLimits.from_mib(1.0, cfg.serve.max_frames, cfg.serve.max_frame_pixels)
    clip, still = (load_video(app[1] / f, f, limits, cfg.video.num_frames) for f in ("clip.mp4", "still.mp4"))
    engine = TransformersBackend(
        WORLD_CRITIC, SamplingConfig(seed=0, max_new_tokens=2)
    )  # that version's weights
    [scored] = judge.score(engine, [clip], [PROMPT], DIMENSIONS, n=1, read="first_token")
    [compared] = judge.compare(
        engine, [clip], [still], [PROMPT], DIMENSIONS, 1, judge_first=True, read="first_token"
    )
    version = {"version": judge_first_version}
    served = http.post("/v1/score", json={"prompt": PROMPT, "video_path": "clip.mp4"} | version).json()
    pair = {"prompt": PROMPT, "video_a_path": "clip.mp4", "video_b_path": "still.mp4"}
    served_pair = http.post("/v1/compare", json=pair | version).json()
    for body, local, kind in ((served, scored, "pointwise"), (served_pair, compared, "pairwise")):
        for dimension, answers in local.items():
            expected, judged = vote(answers, kind), body["dimensions"][dimension]
            assert judged["read"] == expected.read == "first_token"
            assert judged["verdict"] == expected.verdict
            assert judged["probabilities"] == pytest.approx(expected.probabilities, abs=1e-3)


@pytest.mark.timeout(240)
def test_eval_critic_scores_the_served_critic_over_http(
    app: tuple[str, Path], judge_first_version: str
) -> None:
    """`jobs/eval_critic.py --url`: the app's voted verdicts on a labels table whose videos lie under
    its allowed root, against the labels and the oracle."""
    seed = app[1] / "seed"
    build_seed_set(
        seed,
        num_clips=3,
        num_pairs=2,
        defect_rate=0.5,
        strength_range=(0.5, 1.0),
        seed=3,
        annotators=make_annotators(3, seed=0),
        settings=RenderSettings(),
    )
    labels = str(seed / "labels.parquet")
    args = ["--labels", labels, "--url", app[0], "--version", judge_first_version, "--samples", "1"]
    done = subprocess.run(
        [sys.executable, str(ROOT / "jobs" / "eval_critic.py"), *args],
        capture_output=True,
        text=True,
        timeout=200,
        check=False,
        env=os.environ | {"IPO_RAY_CRITIC_TOKEN": TOKEN},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "read: http" in done.stdout
    header = next(line for line in done.stdout.splitlines() if line.startswith("accuracy")).split()[1:]
    assert header == ["served:judge-first:labels", "served:judge-first:oracle", "labels:oracle"]
    assert any(line.startswith("pairwise/all") for line in done.stdout.splitlines())


@pytest.mark.timeout(60)
def test_registering_a_missing_folder_fails_clearly(app: tuple[str, Path], tmp_path: Path) -> None:
    from ipo_ray.critic.serve import register_version

    with pytest.raises(FileNotFoundError, match="no config.json"):
        register_version("v3", tmp_path)


@pytest.mark.timeout(180)
def test_engine_host_serves_two_versions_and_aborts_cancelled_requests(
    vllm_backend,  # noqa: ANN001
    clip_frames: np.ndarray,
    critic_dir: Path,
) -> None:
    """The replica's engine thread, without Ray: n answers per request from two engines at once, a
    load while requests run, cancellation frees the engine."""
    import asyncio

    from ipo_ray.critic.judge import CriticRequest
    from ipo_ray.critic.serve.engine import EngineHost
    from ipo_ray.critic.templates import pointwise_question
    from ipo_ray.critic.vllm_backend import VllmBackend

    host = EngineHost()
    request = CriticRequest((clip_frames,), pointwise_question(PROMPT, "faithfulness"))

    async def run() -> None:
        first = await host.load(lambda: vllm_backend)
        busy = [asyncio.create_task(first.generate([request] * 2, 3)) for _ in range(3)]
        second = await host.load(lambda: VllmBackend(critic_dir, vllm_backend.sampling, block_size=32))
        both = await asyncio.gather(*busy, second.generate([request], 2), first.generate([request], 1))
        assert [[len(samples) for samples in r] for r in both] == [[3, 3]] * 3 + [[2], [1]]
        abandoned = asyncio.create_task(first.generate([request] * 4, 8))
        await asyncio.sleep(0.05)
        abandoned.cancel()
        with pytest.raises(asyncio.CancelledError):
            await abandoned
        second.close()
        assert len((await first.generate([request], 2))[0]) == 2  # still serving

    try:
        asyncio.run(run())
        assert host._jobs == {}  # the abandoned requests were aborted, not left running
    finally:
        host.close()

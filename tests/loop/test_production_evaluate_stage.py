"""The evaluate stage for a tiny random Wan pipeline on a local Ray, with a stub critic.

Checks what a production run's evaluation promises: one mp4 per evaluation prompt under the round's
evaluate folder, listed for the round's evaluation grid, the same prompts and seeds in every round (so
equal weights give equal scores), the base critic asked through the labelling code, and the metrics
under their logged names.
"""

import threading
from pathlib import Path

import pytest

from ipo_ray.config import Config
from ipo_ray.generator.tiny import save_tiny_pipelines
from ipo_ray.loop import eval_clips
from ipo_ray.loop.run_dir import RunDir
from ipo_ray.loop.stages import BASE_CRITIC, EVALUATE, RoundContext, evaluate_generator_stage
from ipo_ray.vocab import DIMENSIONS

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


class StubCritic:
    """Answers /v1/score like the app: Good on every dimension for prompts of even length, else Bad."""

    def __init__(self) -> None:
        self.versions: list[str | None] = []
        self.lock = threading.Lock()

    def score(self, prompt: str, video: str, version: str | None = None) -> dict:
        assert Path(video).is_file() and video.endswith(".mp4")
        with self.lock:
            self.versions.append(version)
        verdict = "Good" if len(prompt) % 2 == 0 else "Bad"
        judgement = {
            "votes": {"Good": 0, "Normal": 0, "Bad": 0} | {verdict: 3},
            "verdict": verdict,
            "reason": "stub",
            "certainty": 1.0,
            "unparseable": 0,
            "samples": 3,
            "answers": [{"text": verdict, "verdict": verdict}] * 3,
        }
        return {"dimensions": dict.fromkeys(DIMENSIONS, judgement)}


def test_production_evaluation_is_fixed_across_rounds_and_scored(ray_cluster, tmp_path: Path) -> None:
    model = save_tiny_pipelines(tmp_path / "models")["wan"]
    generator = {"backend": "wan", "model_path": str(model), "height": 16, "width": 16, "num_frames": 9}
    cfg = Config.model_validate(
        {
            "generator": generator
            | {"num_inference_steps": 2, "cpus_per_actor": 0.5, "prompts_per_batch": 2},
            "align": {"lambda_real": 0},
            "loop": {"evaluation": {"num_prompts": 2}},
        }
    )
    critic = StubCritic()
    run = RunDir(tmp_path / "run")
    ctx = RoundContext(cfg, run, 0, model, model, BASE_CRITIC, model, critic)
    base = evaluate_generator_stage(ctx, model)
    # Round 1 with a refreshed critic live: the evaluation still asks the base critic.
    again = evaluate_generator_stage(
        RoundContext(cfg, run, 1, model, model, "critic-v1", model, critic), model
    )

    clips = sorted((run.stage_dir(0, EVALUATE) / "clips" / "videos").glob("*.mp4"))
    assert len(clips) == 2
    assert [p.name for p in clips] == sorted(
        p.name for p in (run.stage_dir(1, EVALUATE) / "clips" / "videos").glob("*.mp4")
    )
    assert set(critic.versions) == {BASE_CRITIC} and len(critic.versions) == 4
    # Both rounds list their clips for the evaluation grid, paired by prompt (same seed, same file name).
    rows = eval_clips.paired(run.stage_dir(0, EVALUATE), run.stage_dir(1, EVALUATE), num_prompts=4)
    assert rows is not None and len(rows) == 2
    assert sorted(base_clip.name for base_clip, _ in rows) == [p.name for p in clips]
    assert all(base_clip.name == round_clip.name for base_clip, round_clip in rows)
    flicker = base.metrics["eval/temporal_flickering"]
    assert 0.0 < flicker <= 1.0
    assert again.metrics == pytest.approx(base.metrics)  # same weights, prompts and seeds
    for d in DIMENSIONS:
        assert 0.05 <= base.metrics[f"eval/critic/{d}/reward"] <= 0.9
        assert 0.0 <= base.metrics[f"eval/critic/{d}/good_share"] <= 1.0

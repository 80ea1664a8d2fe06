"""The critic of one half in LiFT's split-half cross-labelling: trained briefly, then asked.

`HalfCritic` is a `correction.JudgeHalf`: it writes the training half as a labels table, starts from
a given critic folder or builds a new tiny one from the labels' text (as `jobs/train_critic.py` does
from scratch), trains it with `train_critic` for a small step/minute budget (no held-out split: the
other half is the test), and returns its first-token verdicts on the judged half
(`evaluate.first_token_verdicts`: one forward per batch, always a verdict, as training evaluates).
"""

from dataclasses import dataclass
from pathlib import Path

from ipo_ray.critic.evaluate import first_token_verdicts
from ipo_ray.critic.model import CriticArchitecture, build_critic, load_critic
from ipo_ray.critic.sft import FrameCache, examples_from_labels
from ipo_ray.critic.train_loop import TrainPlan, train_critic
from ipo_ray.data import TableKind, make_table, write_table
from ipo_ray.data import columns as col


@dataclass(frozen=True)
class HalfCritic:
    """Trains and asks one half's critic.

    Attributes:
        work_dir: Each half's labels, initial and trained critic go in ``half-<n>/`` here.
        init: Critic folder to start from; None = a new tiny critic of `vocab_size`.
        num_frames: Frames sampled per video.
        steps, minutes, batch_size: The training budget.
        lr, warmup_steps, with_reasons, describe_share, threads: As `critic.train`.
        vocab_size: Vocabulary of a new critic.
        seed: Weights, data order.
    """

    work_dir: str
    init: str | None
    num_frames: int
    steps: int
    minutes: float | None
    batch_size: int
    lr: float
    warmup_steps: int
    with_reasons: bool
    describe_share: float
    threads: int
    vocab_size: int
    seed: int

    def __call__(self, train: list[dict], judged: list[dict], half: int) -> list[str]:
        """The verdicts, on `judged`, of a critic trained on `train` (see the module docstring)."""
        folder = Path(self.work_dir) / f"half-{half + 1}"
        labels = folder / "train-labels.parquet"
        write_table(make_table(train, TableKind.LABELS), labels, TableKind.LABELS)
        init = self.init
        if init is None:
            corpus = sorted({r[col.PROMPT] for r in train} | {r[col.REASON] for r in train})
            init = str(
                build_critic(
                    folder / "init", corpus, CriticArchitecture(vocab_size=self.vocab_size), self.seed
                )
            )
        plan = TrainPlan(
            init_dir=init,
            labels_path=str(labels),
            out_dir=str(folder / "critic"),
            version=f"correct-half-{half + 1}",
            num_frames=self.num_frames,
            with_reasons=self.with_reasons,
            describe_share=self.describe_share,
            lr=self.lr,
            batch_size=min(self.batch_size, len(train)),
            steps=self.steps,
            minutes=self.minutes,
            warmup_steps=min(self.warmup_steps, self.steps),
            held_out=0.0,
            eval_every=self.steps,
            seed=self.seed,
            threads=self.threads,
        )
        train_critic(plan)
        model, processor = load_critic(plan.out_dir)
        examples = examples_from_labels(make_table(judged, TableKind.LABELS))
        return first_token_verdicts(model, processor, examples, FrameCache(self.num_frames))

"""Config section `annotate`: the annotation studio, where people label videos into the seed set.

Secrets never live here: `tokens_file` names a JSON file of {annotator name: token}, read by the
studio when it starts; without it anyone may sign in with a name.
"""

from pydantic import Field

from ipo_ray.config.base import Section, Seed


class CorrectConfig(Section):
    """LiFT §3.1 data correction: split-half cross-labelling with a briefly trained critic.

    Training settings not named here (learning rate, warm-up, reasons, threads, vocabulary) are
    `critic.train`'s.
    """

    init: str | None = Field(
        None,
        description="Critic folder each half's critic starts from; null = a new tiny critic built from "
        "the labels' captions and reasons (as jobs/train_critic.py does from scratch).",
    )
    steps: int = Field(300, ge=1, description="Optimiser steps per half's critic at most.")
    minutes: float | None = Field(
        10.0, gt=0, description="Wall-clock cap per half's critic in minutes; null = steps only."
    )
    batch_size: int = Field(16, ge=1, description="Examples per optimiser step.")
    seed: Seed = Field(0, description="Seeds the split into halves and each critic's training.")


class AnnotateConfig(Section):
    """The annotation studio: its folder, address, task sharing and limits."""

    dir: str = Field(
        "runs/studio",
        min_length=1,
        description="Studio folder: the task/label database (studio.db), browser copies of videos, exports.",
    )
    app_name: str = Field("annotate", min_length=1, description="Serve application name of the studio.")
    host: str = Field("127.0.0.1", description="HTTP bind address when the studio starts Serve's proxy.")
    port: int = Field(8000, ge=1, le=65535, description="HTTP port when the studio starts Serve's proxy.")
    route_prefix: str = Field(
        "/annotate", pattern=r"^/", description="URL prefix of the studio; the page is served there."
    )
    annotators_per_task: int = Field(
        3, ge=1, description="Distinct annotators who label each task (IPO: at least three, majority vote)."
    )
    gold_every: int = Field(
        10, ge=1, description="One gold task (known answer) after every this many ordinary tasks."
    )
    tokens_file: str | None = Field(
        None,
        description="JSON file {annotator name: token}; set = auth on (sign-in needs the name's token, "
        "else 401); null = anyone signs in with a name.",
    )
    max_reason_chars: int = Field(
        1000, ge=16, description="Longest reason accepted; longer is refused (422), never cut."
    )
    max_prompt_chars: int = Field(
        400,
        ge=16,
        description="Longest prompt a queue accepts (longer is refused when tasks are queued); the page "
        "always shows the whole prompt, wrapped.",
    )
    lease_minutes: float = Field(
        30.0,
        gt=0,
        description="An open task not labelled or skipped within this many minutes may go to another "
        "annotator; the first holder's late submit is then refused (409).",
    )
    review_annotators: int = Field(
        1,
        ge=1,
        description="Distinct annotators of a review task (a relabel from the disagreement view or the "
        "correct command); their vote replaces the item's earlier vote.",
    )
    video_min_side: int = Field(
        256,
        ge=16,
        description="Browser copies of videos are scaled up (nearest neighbour) to at least this many "
        "pixels per side, so 16×16 world clips are visible without blur.",
    )
    cpus_per_replica: float = Field(
        0.1, gt=0, description="Ray CPUs of the studio's replica (it mostly waits on the database)."
    )
    correct: CorrectConfig = Field(
        default_factory=CorrectConfig, description="LiFT's data correction (jobs/annotate.py correct)."
    )

"""What a clip shows, from its caption: targets that teach the critic's vision tower to see attributes.

The vision warm-up's verdict probes (`probe.py`) never ask what a clip shows. A semantic verdict
depends on the caption, which a probe on the video alone cannot read, so the tower learns what
looks wrong rather than what is there. Measured on world-v2 (assets/world_critic/README.md): the
subject's colour and its direction of motion are linearly readable from its video tokens (0.96 and
0.97 on held-out clips), its shape is not (0.56; chance 0.33), and clips of the wrong shape are
never called Bad.

A clip the annotators found semantically Good shows what its caption says, so the caption's words
name what is seen: the subject's colour and shape (clips of one subject) and the action. Any seed
set with specs beside its captions gives these targets for free, from its training split; the
job's ``critic.train.attribute_warmup_steps`` trains the vision tower on them beside the verdict
probes. Real VLM critics start from a vision encoder pretrained on captions; this is the world
critic's small version of that.
"""

from collections.abc import Mapping, Sequence
from typing import Any, Final

from ipo_ray.critic.sft import SftExample
from ipo_ray.world.spec import ACTION_KINDS, DIRECTIONS, SHAPES, SUBJECT_COLOURS

SEMANTIC: Final = "semantic_consistency"
# Classes per attribute; "move" is split by direction, the other actions have none.
ATTRIBUTES: Final[dict[str, tuple[str, ...]]] = {
    "colour": tuple(SUBJECT_COLOURS),
    "shape": SHAPES,
    "action": tuple(f"move {d}" for d in DIRECTIONS) + tuple(k for k in ACTION_KINDS if k != "move"),
}
UNKNOWN: Final = -100  # cross-entropy's ignore index


def attribute_classes(leaves: Mapping[str, Any]) -> list[int]:
    """A flattened spec (`contrast.spec_leaves`) → its class index per attribute, in `ATTRIBUTES`
    order; colour and shape are `UNKNOWN` for two subjects (which one a mean token shows is unclear)."""
    one_subject = "subjects.0.colour" in leaves and "subjects.1.colour" not in leaves
    kind = leaves.get("action.kind")
    action = f"move {leaves.get('action.direction')}" if kind == "move" else kind
    values = {
        "colour": leaves.get("subjects.0.colour") if one_subject else None,
        "shape": leaves.get("subjects.0.shape") if one_subject else None,
        "action": action,
    }
    return [
        classes.index(values[name]) if values[name] in classes else UNKNOWN
        for name, classes in ATTRIBUTES.items()
    ]


def attribute_targets(
    examples: Sequence[SftExample], specs: Mapping[str, Mapping[str, Any]]
) -> dict[str, list[int]]:
    """Video path → class index per attribute, for every clip with a pointwise semantic label Good.

    Args:
        examples: Training rows (pass the training split only); other rows are skipped.
        specs: Caption → flattened spec (`contrast.specs_by_caption`); clips whose caption has none
            are skipped.

    Returns:
        Only clips with at least one known attribute.
    """
    out: dict[str, list[int]] = {}
    for e in examples:
        if e.kind != "pointwise" or e.dimension != SEMANTIC or e.verdict != "Good" or e.caption not in specs:
            continue
        classes = attribute_classes(specs[e.caption])
        if any(c != UNKNOWN for c in classes):
            out[e.video_paths[0]] = classes
    return out

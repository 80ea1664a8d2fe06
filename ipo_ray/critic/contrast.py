"""Caption-contrast pairs: semantic pairwise questions whose answer holds by construction.

Two clips that each match their own caption (the annotators' semantic verdict was Good) and whose
prompts differ in exactly one attribute (a subject's colour or shape, the action or its direction)
make a pairwise semantic question with a known answer: asked with the first clip's caption, the
first clip matches better. Nobody has to judge these pairs, so they add as many clean examples of
the one skill the world critic lacks, comparing each video with the caption's words, as the labels
allow (world-v2 answered "tie" on 41–47% of the pairs where the oracle preferred one clip on
semantics; ipo_ray/assets/world_critic/README.md).

It needs the prompts' structured specs (a prompts table's ``spec_json``, as the world's seed sets
carry) and is built from the training split only, so no held-out clip is ever shown.

Measured on world-v2 (its README): 2,000 pointwise contrasts mixed into 25 minutes of fine-tuning
were not learned (the critic still called 192 of 200 of them Good), and 6,000 pairwise ones without
ties taught only that semantic pairs are never a tie; pairwise contrasts now come with ties of the
same make. Trained alone (`own_rows` beside them: the job's contrast warm-up,
``critic.train.contrast_warmup_steps``) the pointwise ones are learned and transfer to planted
colour and shape defects. Off by default.
"""

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, Literal, get_args

import numpy as np

from ipo_ray.critic.sft import SftExample

# Leaf names of a spec whose difference the semantic question asks about ("objects, colours, action").
CONTRAST_ATTRIBUTES: Final = ("colour", "shape", "kind", "direction")
SEMANTIC: Final = "semantic_consistency"
ContrastKind = Literal["pointwise", "pairwise", "both"]
CONTRAST_KINDS: Final = get_args(ContrastKind)
# How a reason names an attribute (a spec's "kind" is the action).
ATTRIBUTE_WORDS: Final = {"kind": "action"}


def spec_leaves(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A nested spec flattened to ``{"subjects.0.colour": "red", ...}`` (lists by index)."""
    out: dict[str, Any] = {}

    def walk(node: Any, path: str) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                walk(value, f"{path}.{key}" if path else str(key))
        elif isinstance(node, list | tuple):
            for i, value in enumerate(node):
                walk(value, f"{path}.{i}")
        else:
            out[path] = node

    walk(spec, "")
    return out


def specs_by_caption(rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Caption text → its flattened spec, from prompts-table rows (``text``, ``spec_json``).

    A caption written for two different specs is left out: its clips could show either.
    """
    found: dict[str, dict[str, Any]] = {}
    ambiguous: set[str] = set()
    for row in rows:
        text, leaves = row["text"], spec_leaves(json.loads(row["spec_json"]))
        if found.setdefault(text, leaves) != leaves:
            ambiguous.add(text)
    return {text: leaves for text, leaves in found.items() if text not in ambiguous}


def caption_contrast_pairs(
    examples: Sequence[SftExample],
    specs: Mapping[str, Mapping[str, Any]],
    count: int,
    seed: int,
    kind: ContrastKind = "pairwise",
    attributes: Sequence[str] = CONTRAST_ATTRIBUTES,
) -> list[SftExample]:
    """Semantic examples from up to `count` pairs of clips whose prompts differ in one attribute.

    Pointwise: one clip asked with the other's caption, answered Bad. The clip's own Good row stays
    in training, so the same video is Good under one caption and Bad under the other: neither the
    video nor the caption alone gives the answer, only their comparison does.

    Pairwise: both clips asked with one clip's caption; that clip is preferred. Each preference
    comes with a tie of the same make, so that "semantic pairs are never a tie" is not what is
    learned (it was, without them: the module docstring): both clips asked with the caption of a
    third clip that differs from both in the same attribute (neither matches), or, on every other
    pair and where no such clip exists, the first clip beside itself (both match).

    Args:
        examples: Training rows; their pointwise semantic rows with verdict Good give the clips.
        specs: Caption → flattened spec (`specs_by_caption`); clips of other captions are skipped.
        count: Pairs to draw (fewer when fewer exist), each without repeats.
        seed: Fixes the draw and which clip goes first.
        kind: ``"pointwise"``, ``"pairwise"`` (a preference and a tie per pair) or ``"both"``.
        attributes: Leaf names (the last part of a spec path) a pair may differ in.

    Returns:
        ``semantic_consistency`` examples; pairwise, the matching clip is A in half of them.
    """
    if kind not in CONTRAST_KINDS:
        raise ValueError(f"contrast kind must be one of {CONTRAST_KINDS}, got {kind!r}")
    clips: dict[str, dict[str, Any]] = {}  # video path → spec leaves, clips that match their caption
    captions: dict[str, str] = {}
    for e in examples:
        if e.kind == "pointwise" and e.dimension == SEMANTIC and e.verdict == "Good" and e.caption in specs:
            clips[e.video_paths[0]] = dict(specs[e.caption])
            captions[e.video_paths[0]] = e.caption
    # Clips that agree on every leaf but one share a bucket keyed by that leaf and all the others.
    buckets: dict[tuple, list[str]] = defaultdict(list)
    for path, leaves in clips.items():
        items = sorted(leaves.items())
        for i, (name, value) in enumerate(items):
            if name.rsplit(".", 1)[-1] in attributes and value is not None:
                buckets[(name, tuple(items[:i] + items[i + 1 :]))].append(path)
    candidates = [
        (name, a, b, paths)
        for (name, _), paths in buckets.items()  # insertion order: deterministic
        for i, a in enumerate(paths)
        for b in paths[i + 1 :]
        if clips[a][name] != clips[b][name]
    ]
    rng = np.random.default_rng(seed)
    chosen = rng.permutation(len(candidates))[:count]
    out = []
    for k, index in enumerate(chosen):
        name, a, b, bucket = candidates[index]
        if rng.random() < 0.5:  # either clip's caption: the question has the same answer shape
            a, b = b, a
        leaf = name.rsplit(".", 1)[-1]
        word = ATTRIBUTE_WORDS.get(leaf, leaf)
        seen, asked = clips[b][name], clips[a][name]
        if kind in ("pointwise", "both"):
            text = f"The {word} is {seen}, not {asked}."
            out.append(SftExample(f"contrast:{b}|{a}", "pointwise", SEMANTIC, (b,), captions[a], "Bad", text))
        if kind == "pointwise":
            continue
        first = k % 2 == 0  # the matching clip alternates between A and B
        winner, loser = ("A", "B") if first else ("B", "A")
        reason = f"Video {winner} is better: in video {loser}, the {word} is {seen}, not {asked}."
        out.append(
            SftExample(
                label_id=f"contrast:{a}|{b}",
                kind="pairwise",
                dimension=SEMANTIC,
                video_paths=(a, b) if first else (b, a),
                caption=captions[a],
                verdict=winner,
                reason=reason,
            )
        )
        out.append(_tie(name, word, a, b, bucket, clips, captions, both_match=not first, rng=rng))
    return out


def _tie(
    name: str,
    word: str,
    a: str,
    b: str,
    bucket: Sequence[str],
    clips: Mapping[str, Mapping[str, Any]],
    captions: Mapping[str, str],
    both_match: bool,
    rng: np.random.Generator,
) -> SftExample:
    """A pairwise tie shaped like the preference (a, b): neither clip matches, or both do."""
    thirds = [c for c in bucket if clips[c][name] not in (clips[a][name], clips[b][name])]
    if thirds and not both_match:
        third = thirds[int(rng.integers(len(thirds)))]
        asked = clips[third][name]
        reason = f"Neither video shows the {word} {asked}."
        return SftExample(
            f"contrast-tie:{a}|{b}|{third}", "pairwise", SEMANTIC, (a, b), captions[third], "tie", reason
        )
    reason = f"Both videos show the {word} {clips[a][name]}."
    return SftExample(f"contrast-tie:{a}|{a}", "pairwise", SEMANTIC, (a, a), captions[a], "tie", reason)


def own_rows(examples: Sequence[SftExample], contrasts: Sequence[SftExample]) -> list[SftExample]:
    """The clips' own pointwise semantic rows (Good) for every video the contrasts show.

    What a contrast-only stage trains on beside the contrasts: without them every row of the stage
    would be a mismatch, and "Bad"/"never a tie" would fit without looking at the caption.
    """
    shown = {p for c in contrasts for p in c.video_paths}
    return [
        e
        for e in examples
        if e.kind == "pointwise"
        and e.dimension == SEMANTIC
        and e.verdict == "Good"
        and e.video_paths[0] in shown
    ]

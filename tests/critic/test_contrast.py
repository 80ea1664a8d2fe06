"""Caption-contrast pairs: one-attribute neighbours of clean clips, answers by construction."""

import json

from ipo_ray.critic.contrast import caption_contrast_pairs, spec_leaves, specs_by_caption
from ipo_ray.critic.sft import SftExample


def _spec(colour: str, shape: str = "square", kind: str = "grow", background: str = "navy") -> dict:
    return {
        "subjects": [{"colour": colour, "shape": shape, "size": "small"}],
        "action": {"kind": kind, "direction": None, "speed": None},
        "scene": {"background": background, "texture": "plain"},
    }


def _clip(
    path: str, caption: str, verdict: str = "Good", dimension: str = "semantic_consistency"
) -> SftExample:
    return SftExample(f"{path}/{dimension}", "pointwise", dimension, (path,), caption, verdict, "")


SPECS = {
    "red square grows": _spec("red"),
    "blue square grows": _spec("blue"),
    "red circle grows": _spec("red", shape="circle"),
    "red square shrinks": _spec("red", kind="shrink"),
    "blue circle grows": _spec("blue", shape="circle"),  # two attributes from the red square
    "red square grows on black": _spec("red", background="black"),  # differs only in the scene
    "bad red square": _spec("red"),
}


def test_specs_flatten_and_ambiguous_captions_are_left_out() -> None:
    assert spec_leaves(_spec("red"))["subjects.0.colour"] == "red"
    rows = [{"text": t, "spec_json": json.dumps(s)} for t, s in SPECS.items()]
    rows.append({"text": "red square grows", "spec_json": json.dumps(_spec("green"))})
    specs = specs_by_caption(rows)
    assert "red square grows" not in specs and specs["blue square grows"]["subjects.0.colour"] == "blue"


def test_pairs_differ_in_one_asked_attribute_and_the_matching_clip_wins() -> None:
    clips = [_clip(f"v{i}.mp4", caption) for i, caption in enumerate(SPECS) if caption != "bad red square"]
    clips += [
        _clip("v9.mp4", "bad red square", verdict="Bad"),  # the annotators saw a mismatch: not a clean clip
        _clip("v8.mp4", "blue square grows", dimension="faithfulness"),  # not a semantic row
    ]
    specs = {c: spec_leaves(s) for c, s in SPECS.items()}
    pairs = caption_contrast_pairs(clips, specs, count=100, seed=0)
    # red square ↔ blue square (colour), ↔ red circle (shape), ↔ red square shrinking (action);
    # red circle ↔ blue circle (colour); blue square ↔ blue circle (shape). Not the scene, not two.
    assert len(pairs) == 5
    assert {p.verdict for p in pairs} == {"A", "B"}
    caption_of = {c.video_paths[0]: c.caption for c in clips}
    for p in pairs:
        assert p.kind == "pairwise" and p.dimension == "semantic_consistency"
        winner = p.video_paths[0 if p.verdict == "A" else 1]
        loser = p.video_paths[1 if p.verdict == "A" else 0]
        assert caption_of[winner] == p.caption and caption_of[loser] != p.caption
        assert {"v9.mp4", "v8.mp4"}.isdisjoint(p.video_paths)
        diff = [k for k, v in specs[caption_of[winner]].items() if specs[caption_of[loser]][k] != v]
        assert len(diff) == 1 and diff[0].rsplit(".", 1)[-1] in ("colour", "shape", "kind")
        assert p.reason.startswith(f"Video {p.verdict} is better: in video ")
    assert caption_contrast_pairs(clips, specs, count=100, seed=0) == pairs  # deterministic
    assert len(caption_contrast_pairs(clips, specs, count=2, seed=1)) == 2
    assert caption_contrast_pairs(clips, {}, count=100, seed=0) == []


def test_pointwise_contrast_asks_a_clean_clip_with_its_neighbours_caption() -> None:
    clips = [_clip(f"v{i}.mp4", caption) for i, caption in enumerate(SPECS) if caption != "bad red square"]
    specs = {c: spec_leaves(s) for c, s in SPECS.items()}
    rows = caption_contrast_pairs(clips, specs, count=100, seed=0, kind="pointwise")
    assert len(rows) == 5
    caption_of = {c.video_paths[0]: c.caption for c in clips}
    for row in rows:
        assert (row.kind, row.dimension, row.verdict) == ("pointwise", "semantic_consistency", "Bad")
        (video,) = row.video_paths
        own, asked = specs[caption_of[video]], specs[row.caption]
        diff = [k for k, v in own.items() if asked[k] != v]
        assert len(diff) == 1  # the same clip is Good under its own caption, Bad under this one
        leaf = diff[0].rsplit(".", 1)[-1]
        word = {"kind": "action"}.get(leaf, leaf)
        assert row.reason == f"The {word} is {own[diff[0]]}, not {asked[diff[0]]}."

"""Caption-contrast pairs: one-attribute neighbours of clean clips, answers by construction."""

import json

import pytest

from ipo_ray.critic.contrast import caption_contrast_pairs, own_rows, spec_leaves, specs_by_caption
from ipo_ray.critic.parse import parse_answer
from ipo_ray.critic.sft import SftExample
from ipo_ray.critic.templates import format_answer


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
    "green square grows": _spec("green"),  # a third colour: a tie where neither clip matches
}


def test_specs_flatten_and_ambiguous_captions_are_left_out() -> None:
    assert spec_leaves(_spec("red"))["subjects.0.colour"] == "red"
    rows = [{"text": t, "spec_json": json.dumps(s)} for t, s in SPECS.items()]
    rows.append({"text": "red square grows", "spec_json": json.dumps(_spec("green"))})
    specs = specs_by_caption(rows)
    assert "red square grows" not in specs and specs["blue square grows"]["subjects.0.colour"] == "blue"


def _clean_clips() -> list[SftExample]:
    return [_clip(f"v{i}.mp4", caption) for i, caption in enumerate(SPECS) if caption != "bad red square"]


def _diff(specs: dict, a: str, b: str) -> list[str]:
    return [k for k, v in specs[a].items() if specs[b][k] != v]


def test_pairs_differ_in_one_asked_attribute_and_the_matching_clip_wins() -> None:
    clips = _clean_clips() + [
        _clip("v9.mp4", "bad red square", verdict="Bad"),  # the annotators saw a mismatch: not a clean clip
        _clip("v8.mp4", "blue square grows", dimension="faithfulness"),  # not a semantic row
    ]
    specs = {c: spec_leaves(s) for c, s in SPECS.items()}
    rows = caption_contrast_pairs(clips, specs, count=100, seed=0)
    preferences = [r for r in rows if r.verdict != "tie"]
    # red square ↔ blue, ↔ green square (colour), ↔ red circle (shape), ↔ red square shrinking
    # (action); blue ↔ green square; red circle ↔ blue circle (colour); blue square ↔ blue circle
    # (shape). Not the scene, not two attributes.
    assert len(preferences) == 7 and len(rows) == 14  # a tie beside every preference
    assert {p.verdict for p in preferences} == {"A", "B"}
    caption_of = {c.video_paths[0]: c.caption for c in clips}
    for p in preferences:
        assert p.kind == "pairwise" and p.dimension == "semantic_consistency"
        winner = p.video_paths[0 if p.verdict == "A" else 1]
        loser = p.video_paths[1 if p.verdict == "A" else 0]
        assert caption_of[winner] == p.caption and caption_of[loser] != p.caption
        assert {"v9.mp4", "v8.mp4"}.isdisjoint(p.video_paths)
        diff = _diff(specs, caption_of[winner], caption_of[loser])
        assert len(diff) == 1 and diff[0].rsplit(".", 1)[-1] in ("colour", "shape", "kind")
        assert p.reason.startswith(f"Video {p.verdict} is better: in video ")
    assert caption_contrast_pairs(clips, specs, count=100, seed=0) == rows  # deterministic
    assert len(caption_contrast_pairs(clips, specs, count=2, seed=1)) == 4
    assert caption_contrast_pairs(clips, {}, count=100, seed=0) == []


def test_pairwise_ties_are_both_clips_matching_or_neither() -> None:
    specs = {c: spec_leaves(s) for c, s in SPECS.items()}
    clips = _clean_clips()
    caption_of = {c.video_paths[0]: c.caption for c in clips}
    ties = [r for r in caption_contrast_pairs(clips, specs, count=100, seed=0) if r.verdict == "tie"]
    kinds = set()
    for tie in ties:
        a, b = tie.video_paths
        if a == b:  # the clip beside itself, under its own caption: both match
            assert tie.caption == caption_of[a] and tie.reason.startswith("Both videos show the ")
            kinds.add("both")
            continue
        # neither matches: the asked caption differs from each clip's in the attribute they differ in
        (name,) = _diff(specs, caption_of[a], caption_of[b])
        asked = specs[tie.caption]
        assert asked[name] not in (specs[caption_of[a]][name], specs[caption_of[b]][name])
        assert _diff(specs, caption_of[a], tie.caption) == [name]
        assert tie.reason == f"Neither video shows the colour {asked[name]}."
        kinds.add("neither")
    assert kinds == {"both", "neither"}  # red/blue/green squares give the one "neither" bucket


def test_both_kinds_and_the_clips_own_rows() -> None:
    specs = {c: spec_leaves(s) for c, s in SPECS.items()}
    clips = _clean_clips() + [_clip("v8.mp4", "blue square grows", dimension="faithfulness")]
    rows = caption_contrast_pairs(clips, specs, count=3, seed=2, kind="both")
    assert [r.kind for r in rows] == ["pointwise", "pairwise", "pairwise"] * 3
    own = own_rows(clips, rows)
    shown = {p for r in rows for p in r.video_paths}
    assert {o.video_paths[0] for o in own} == shown
    assert all(o.verdict == "Good" and o.dimension == "semantic_consistency" for o in own)
    # Every answer reads back as its verdict: a reason must not start with a verdict word.
    for row in caption_contrast_pairs(clips, specs, count=100, seed=0, kind="both"):
        assert parse_answer(format_answer(row.kind, row.verdict, row.reason), row.kind).verdict == row.verdict
    with pytest.raises(ValueError, match="contrast kind"):
        caption_contrast_pairs(clips, specs, count=3, seed=2, kind="triple")  # type: ignore[arg-type]


def test_pointwise_contrast_asks_a_clean_clip_with_its_neighbours_caption() -> None:
    clips = _clean_clips()
    specs = {c: spec_leaves(s) for c, s in SPECS.items()}
    rows = caption_contrast_pairs(clips, specs, count=100, seed=0, kind="pointwise")
    assert len(rows) == 7
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

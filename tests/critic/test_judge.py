"""`judge.compare` in both orders, on backends whose answers follow a rule (no model needed)."""

from collections.abc import Sequence

import numpy as np
import pytest

from ipo_ray.critic import judge
from ipo_ray.critic.judge import CriticRequest, from_swapped_order
from ipo_ray.critic.parse import parse_answer
from ipo_ray.critic.serve.responses import compare_response
from ipo_ray.critic.voting import vote


def _clip(brightness: int) -> np.ndarray:
    return np.full((4, 8, 8, 3), brightness, dtype=np.uint8)


class _FirstShown:
    """Always prefers the video shown first: pure position bias."""

    def __init__(self) -> None:
        self.requests: list[CriticRequest] = []

    def generate(self, requests: Sequence[CriticRequest], n: int) -> list[list[str]]:
        self.requests += requests
        return [["A. it comes first"] * n for _ in requests]


class _Brighter:
    """Prefers the brighter video, whichever side it is on; equal brightness is a tie."""

    def generate(self, requests: Sequence[CriticRequest], n: int) -> list[list[str]]:
        out = []
        for r in requests:
            a, b = (int(v.mean()) for v in r.videos)
            answer = "A. brighter" if a > b else "B. brighter" if b > a else "Tie. as bright"
            out.append([answer] * n)
        return out


def test_both_orders_asks_each_question_swapped_and_maps_the_verdicts_back() -> None:
    backend = _FirstShown()
    a, b = _clip(10), _clip(200)
    [answers] = judge.compare(backend, [a], [b], ["a red circle"], ["faithfulness"], n=3, both_orders=True)
    shown = [(int(r.videos[0].mean()), int(r.videos[1].mean())) for r in backend.requests]
    assert shown == [(10, 200), (200, 10)]
    got = answers["faithfulness"]
    assert [x.verdict for x in got] == ["A"] * 3 + ["B"] * 3
    assert [x.swapped for x in got] == [False] * 3 + [True] * 3
    assert got[3].reason == "it comes first"  # the reason keeps the order the model saw
    result = vote(got, "pairwise")  # position bias alone splits the vote: no preference
    assert result.verdict is None and result.certainty == 0.0


@pytest.mark.parametrize(("first", "second", "expected"), [(200, 10, "A"), (10, 200, "B"), (90, 90, "tie")])
def test_an_unbiased_critic_keeps_its_verdict_in_both_orders(first: int, second: int, expected: str) -> None:
    captions = ["a blue square"] * 2
    dims = ["semantic_consistency", "faithfulness"]
    a, b = [_clip(first)] * 2, [_clip(second)] * 2
    got = judge.compare(_Brighter(), a, b, captions, dims, 2, both_orders=True)
    for item in got:
        for answers in item.values():
            assert len(answers) == 4 and {x.verdict for x in answers} == {expected}
    body = compare_response("default", got[0])
    assert body.samples == 4
    judgement = body.dimensions["faithfulness"]
    assert judgement.verdict == expected and judgement.certainty == 1.0
    assert [x.swapped for x in judgement.answers] == [False, False, True, True]


def test_one_order_is_unchanged_by_default() -> None:
    [answers] = judge.compare(_FirstShown(), [_clip(1)], [_clip(2)], ["x"], ["faithfulness"], n=2)
    assert [(x.verdict, x.swapped) for x in answers["faithfulness"]] == [("A", False)] * 2


def test_unparseable_answers_stay_unparseable_when_mapped_back() -> None:
    mapped = from_swapped_order(parse_answer("maybe the first one", "pairwise"))
    assert mapped.verdict is None and mapped.swapped and mapped.problem
    assert from_swapped_order(parse_answer("Tie. same", "pairwise")).verdict == "tie"
    with pytest.raises(ValueError, match="already mapped back"):
        from_swapped_order(mapped)
    with pytest.raises(ValueError, match="not a pairwise verdict"):
        from_swapped_order(parse_answer("Good. fine", "pointwise"))


class _JudgesBrightness:
    """A judge-first critic by rule: a bright video (mean > 100) is Good, a dark one Bad; a pairwise
    question answered after given verdict lines prefers the video its lines call Good."""

    def __init__(self, split_on: int | None = None) -> None:
        self.requests: list[CriticRequest] = []
        self.split_on = split_on  # a brightness whose pointwise votes split Good/Bad (no majority)

    def generate(self, requests: Sequence[CriticRequest], n: int) -> list[list[str]]:
        self.requests += requests
        out = []
        for r in requests:
            if len(r.videos) == 1:
                level = int(r.videos[0].mean())
                if level == self.split_on:
                    out.append([("Good. bright" if i % 2 else "Bad. dark") for i in range(n)])
                else:
                    out.append(["Good. bright" if level > 100 else "Bad. dark"] * n)
            elif r.answer_prefix:
                first_good = r.answer_prefix.startswith("Video A: Good.")
                out.append([" A. its verdict" if first_good else " B. its verdict"] * n)
            else:
                out.append(["Tie. asked directly"] * n)
        return out


def test_judge_first_asks_each_video_then_the_pair_after_those_verdicts() -> None:
    backend = _JudgesBrightness()
    a, b = _clip(10), _clip(200)
    [answers] = judge.compare(backend, [a], [b], ["a red circle"], ["faithfulness"], n=3, judge_first=True)
    pointwise = [r for r in backend.requests if len(r.videos) == 1]
    pairwise = [r for r in backend.requests if len(r.videos) == 2]
    assert [int(r.videos[0].mean()) for r in pointwise] == [10, 200]  # A, then B, each alone
    assert backend.requests[:2] == pointwise  # verdicts first
    # Both orders by default for a judge-first critic; the verdict lines follow the videos shown.
    assert [r.answer_prefix for r in pairwise] == [
        "Video A: Bad.\nVideo B: Good.\nAnswer:",
        "Video A: Good.\nVideo B: Bad.\nAnswer:",
    ]
    assert all("Think step by step" in r.question for r in pairwise)  # asked as it was trained
    got = answers["faithfulness"]
    assert [x.verdict for x in got] == ["B"] * 6 and [x.swapped for x in got] == [False] * 3 + [True] * 3
    assert got[0].text == "Video A: Bad.\nVideo B: Good.\nAnswer: B. its verdict"
    assert got[0].thinking == "Video A: Bad.\nVideo B: Good." and got[0].reason == "its verdict"


def test_judge_first_asks_directly_where_a_video_has_no_majority_verdict() -> None:
    backend = _JudgesBrightness(split_on=10)
    dims = ["semantic_consistency", "faithfulness"]
    [answers] = judge.compare(
        backend, [_clip(10)], [_clip(200)], ["x"], dims, n=2, both_orders=False, judge_first=True
    )
    pairwise = [r for r in backend.requests if len(r.videos) == 2]
    assert [r.answer_prefix for r in pairwise] == ["", ""]
    assert all(x.verdict == "tie" and x.text == "Tie. asked directly" for d in dims for x in answers[d])


def test_judged_pair_requests_and_voted_verdicts() -> None:
    a, b = _clip(1), _clip(2)
    given = judge.parse_replies(
        [CriticRequest((a,), "q")] * 4,
        [["Good. x", "Good. y"], ["Bad. x", "Good. y"], ["Normal. x"] * 2, ["Bad. x", "Bad."]],
        "pointwise",
        cot=False,
    )
    verdicts = judge.voted_pair_verdicts(given, ["motion_smoothness", "faithfulness"])
    assert verdicts == (
        {"motion_smoothness": "Good", "faithfulness": None},
        {"motion_smoothness": "Normal", "faithfulness": "Bad"},
    )
    requests = judge.judged_pair_requests(
        a, b, "a cat", ["motion_smoothness", "faithfulness"], cot=False, both_orders=True, verdicts=verdicts
    )
    assert [r.answer_prefix for r in requests] == [
        "Video A: Good.\nVideo B: Normal.\nAnswer:",
        "",  # A has no majority on faithfulness: asked directly
        "Video A: Normal.\nVideo B: Good.\nAnswer:",
        "",
    ]
    assert [r.videos[0] is a for r in requests] == [True, True, False, False]
    with pytest.raises(ValueError, match="2 videos"):
        judge.voted_pair_verdicts(given[:3], ["motion_smoothness", "faithfulness"])

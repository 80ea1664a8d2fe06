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

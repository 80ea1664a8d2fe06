"""Caption attributes as vision warm-up targets: classes from a spec, clips the annotators found
semantically Good only."""

from ipo_ray.critic.attributes import ATTRIBUTES, UNKNOWN, attribute_classes, attribute_targets
from ipo_ray.critic.contrast import spec_leaves
from ipo_ray.critic.sft import SftExample


def _spec(*subjects: tuple[str, str], kind: str = "move", direction: str | None = "left") -> dict:
    return spec_leaves(
        {
            "subjects": [{"colour": c, "shape": s, "size": "small"} for c, s in subjects],
            "action": {"kind": kind, "direction": direction, "speed": "slow" if kind == "move" else None},
            "scene": {"background": "navy", "texture": "plain"},
        }
    )


def test_classes_name_colour_shape_and_action_and_leave_two_subjects_unknown() -> None:
    colour, shape, action = (list(v) for v in ATTRIBUTES.values())
    assert attribute_classes(_spec(("red", "square"))) == [
        colour.index("red"),
        shape.index("square"),
        action.index("move left"),
    ]
    grows = attribute_classes(_spec(("blue", "circle"), kind="grow", direction=None))
    assert grows[2] == action.index("grow")
    two = attribute_classes(_spec(("red", "square"), ("blue", "circle"), kind="bounce", direction=None))
    assert two == [UNKNOWN, UNKNOWN, action.index("bounce")]  # which subject a mean token shows is unclear
    assert attribute_classes({}) == [UNKNOWN] * 3


def _row(
    path: str, caption: str, verdict: str, dimension: str = "semantic_consistency", kind: str = "pointwise"
) -> SftExample:
    paths = (path,) if kind == "pointwise" else (path, "other.mp4")
    return SftExample(f"{path}/{dimension}", kind, dimension, paths, caption, verdict, "")


def test_targets_come_from_semantically_good_clips_with_a_spec() -> None:
    specs = {"red square": _spec(("red", "square")), "blue circle": _spec(("blue", "circle"))}
    rows = [
        _row("a.mp4", "red square", "Good"),
        _row("b.mp4", "blue circle", "Bad"),  # shows something else than its caption
        _row("c.mp4", "blue circle", "Good", dimension="motion_smoothness"),  # says nothing of content
        _row("d.mp4", "no spec", "Good"),
        _row("e.mp4", "red square", "A", kind="pairwise"),
    ]
    assert attribute_targets(rows, specs) == {"a.mp4": attribute_classes(specs["red square"])}

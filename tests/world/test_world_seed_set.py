import pytest

from ipo_ray.data import TableKind, read_frames, read_table
from ipo_ray.data import columns as col
from ipo_ray.world.annotators import make_annotators
from ipo_ray.world.render import RenderSettings
from ipo_ray.world.seed_set import build_seed_set


@pytest.fixture(scope="module")
def seed_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("seed")
    summary = build_seed_set(
        out,
        num_clips=40,
        num_pairs=20,
        defect_rate=0.6,
        strength_range=(0.2, 1.0),
        seed=3,
        annotators=make_annotators(3, seed=1),
        settings=RenderSettings(),
    )
    return out, summary


def test_every_item_is_labelled_or_flagged(seed_set):
    out, summary = seed_set
    labels = read_table(out / "labels.parquet", TableKind.LABELS)
    assert summary.clips == 40 + 2 * 20
    # 60 items × 3 dimensions: each judgement is a voted row or a flagged one, never both, never lost.
    assert labels.num_rows + summary.no_majority == 60 * 3
    review_lines = (out / "review.jsonl").read_text().splitlines()
    assert len(review_lines) == summary.no_majority
    kinds = labels[col.KIND].to_pylist()
    assert kinds.count("pointwise") > 0 and kinds.count("pairwise") > 0
    assert len(read_table(out / "prompts.parquet", TableKind.PROMPTS)) == 60


def test_labels_point_at_readable_videos_and_carry_reasons(seed_set):
    out, _ = seed_set
    labels = read_table(out / "labels.parquet", TableKind.LABELS).to_pylist()
    for row in labels[:10]:
        assert read_frames(row[col.VIDEO_PATH], num_frames=None).shape == (4, 16, 16, 3)
    bad = [r for r in labels if r[col.VERDICT] in ("Normal", "Bad")]
    assert bad and all(r[col.REASON] for r in bad)
    assert all(0.5 < r[col.CERTAINTY] <= 1.0 for r in labels)


def test_vote_agrees_with_the_oracle_more_than_one_annotator(seed_set):
    _, summary = seed_set
    vote, single = summary.agreement["vote"], summary.agreement["single"]
    assert sum(vote.values()) > sum(single.values())


def test_a_committed_seed_set_is_not_overwritten(seed_set):
    out, _ = seed_set
    with pytest.raises(FileExistsError, match="already holds a seed set"):
        build_seed_set(
            out,
            num_clips=1,
            num_pairs=0,
            defect_rate=0.0,
            strength_range=(0.5, 1.0),
            seed=0,
            annotators=make_annotators(3),
            settings=RenderSettings(),
        )


def test_a_generated_share_labels_the_generators_own_clips(tmp_path):
    """IPO's annotators judge the base model's videos: with a share, those clips come from the shipped
    world generator, sampled from the item's prompt text; the rest stays rendered, the texts unchanged."""
    from ipo_ray.config import load_config
    from ipo_ray.world.build import seed_set as configured_seed_set

    sizes = ["world.seed_set.num_clips=8", "world.seed_set.num_pairs=4", "generator.num_inference_steps=4"]
    rendered = configured_seed_set(load_config(None, sizes), tmp_path / "rendered")
    cfg = load_config(None, [*sizes, "world.seed_set.generated_share=0.5"])
    mixed = configured_seed_set(cfg, tmp_path / "mixed")
    assert rendered.generated == 0 and mixed.generated == 4 + 2 * 2  # half the clips, half the pairs (×2)
    texts = [
        read_table(d / "prompts.parquet", TableKind.PROMPTS)[col.TEXT].to_pylist()
        for d in (tmp_path / "rendered", tmp_path / "mixed")
    ]
    assert texts[0] == texts[1]
    same = [
        (
            read_frames(tmp_path / "rendered" / "videos" / p.name, num_frames=None)
            == read_frames(p, num_frames=None)
        ).all()
        for p in sorted((tmp_path / "mixed" / "videos").glob("*.mp4"))
    ]
    assert len(same) == 16 and same.count(False) == mixed.generated
    labels = read_table(tmp_path / "mixed" / "labels.parquet", TableKind.LABELS)
    assert labels.num_rows + mixed.no_majority == 12 * 3


def test_a_generated_share_needs_a_sampler(tmp_path):
    with pytest.raises(ValueError, match="sampler"):
        build_seed_set(
            tmp_path,
            num_clips=2,
            num_pairs=0,
            defect_rate=0.5,
            strength_range=(0.2, 1.0),
            seed=0,
            annotators=make_annotators(3, seed=1),
            settings=RenderSettings(),
            generated_share=0.5,
        )

"""The scale schedule against the reference's results (SPEC 3)."""
import json

import pytest
import torch

from singan.pyramid import build_reals, plan_pyramid


def test_schedule_matches_reference_for_every_size(reference):
    results = json.loads((reference / "scales" / "scales.json").read_text())["results"]
    assert len(results) >= 15
    for r in results:
        h, w = r["input_hw"]
        plan = plan_pyramid(h, w, min_size=25, max_size=250,
                            scale_factor=r["scale_factor_init"], sr=r["variant"] != "default")
        label = (h, w, r["variant"])
        assert plan.num_scales == r["num_scales"], label
        assert plan.stop_scale == r["stop_scale"], label
        assert plan.scale1 == r["scale1"], label
        assert plan.scale_factor == r["scale_factor"], label
        assert list(plan.real_shape) == r["real_resized_shape"][2:], label
        assert [list(s) for s in plan.shapes] == [s[2:] for s in r["reals_pyramid_shapes"]], label


def test_reals_have_the_planned_shapes():
    image = torch.rand(1, 3, 60, 90) * 2 - 1
    plan = plan_pyramid(60, 90, min_size=20, max_size=50)
    reals = build_reals(image, plan)
    assert [tuple(r.shape[2:]) for r in reals] == [tuple(s) for s in plan.shapes]
    assert plan.shapes[-1] == (34, 50) and min(plan.shapes[0]) == 20


def test_image_smaller_than_min_size_is_refused():
    with pytest.raises(ValueError, match="at least min_size = 25"):
        plan_pyramid(20, 100)


def test_extreme_aspect_ratio_is_refused():
    # the reference builds an empty pyramid here (stop_scale < 1) without a word
    with pytest.raises(ValueError, match="aspect ratio is too extreme"):
        plan_pyramid(30, 1000)


def test_bad_scale_factor_is_refused():
    with pytest.raises(ValueError, match="between 0 and 1"):
        plan_pyramid(100, 100, scale_factor=1.5)

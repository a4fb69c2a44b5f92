"""The scale schedule against the reference's results (SPEC 3)."""
import json

import pytest
import torch

from singan.methods.singan.pyramid import build_reals, plan_pyramid


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


# ---- the edges of the schedule, each worked out by hand from the formulas in plan_pyramid's
# docstring (SPEC 3) ----------------------------------------------------------------------------

def test_an_empty_image_is_refused_whichever_side_is_zero():
    for h, w in ((0, 100), (100, 0), (-3, 40)):
        with pytest.raises(ValueError) as err:
            plan_pyramid(h, w)
        assert str(err.value) == f"image size must be positive, got {h} x {w}"


def test_a_one_pixel_side_is_judged_by_min_size_alone():
    # min_size 1, max_size 30: num_scales = ceil(log(1/1)/log .75) + 1 = 1, scale2stop = 0,
    # stop_scale = 1, scale1 = 1, factor (1/1)^1 = 1: two levels of 1 x 30 (and of 30 x 1)
    assert plan_pyramid(1, 30, min_size=1, max_size=30).shapes == [(1, 30), (1, 30)]
    assert plan_pyramid(30, 1, min_size=1, max_size=30).shapes == [(30, 1), (30, 1)]


@pytest.mark.parametrize("factor", [0.0, 1.0, -0.5])
def test_a_scale_factor_outside_the_open_interval_is_refused(factor):
    with pytest.raises(ValueError) as err:
        plan_pyramid(100, 100, scale_factor=factor)
    assert str(err.value) == f"scale_factor must be between 0 and 1, got {factor}"


def test_a_shorter_side_equal_to_min_size_is_enough():
    # 25 x 40, min 25: num_scales = ceil(log(25/25)/log .75) + 1 = 1, scale2stop = 0, so
    # stop_scale = 1: two levels, both the image itself
    plan = plan_pyramid(25, 40)
    assert plan.stop_scale == 1 and plan.shapes == [(25, 40), (25, 40)]
    assert plan.min_size == 25 and plan.real_shape == (25, 40)


def test_min_size_may_equal_max_size_but_not_exceed_it():
    plan = plan_pyramid(40, 40, min_size=30, max_size=30)      # scale1 = 30/40: 30 x 30
    assert plan.real_shape == (30, 30) and plan.min_size == 30
    with pytest.raises(ValueError) as err:
        plan_pyramid(100, 100, min_size=60, max_size=50)
    assert str(err.value) == "min_size (60) must not exceed max_size (50)"


def test_the_default_max_size_is_250():
    # the README's default: a 300 x 400 photo trains at 250 / 400 of its size, ceil(187.5) x 250
    assert plan_pyramid(300, 400).real_shape == (188, 250)


def test_a_finest_scale_below_min_size_is_refused_with_its_size():
    # 30 x 330, max 250: scale1 = 250/330, finest 23 x 250 (23 < 25); num_scales =
    # ceil(log(25/30)/log .75) + 1 = 2 and scale2stop = ceil(log(250/330)/log .75) = 1, so
    # stop_scale = 1 would pass: only the finest scale's size refuses it
    with pytest.raises(ValueError) as err:
        plan_pyramid(30, 330)
    assert "(the finest scale would be 23 x 250)" in str(err.value)


def test_the_sr_schedule_divides_by_the_width_and_forces_min_size_18():
    # SR on 100 x 400, max 250 (reference: int() and the width): num_scales =
    # int(log(18/100)/log .75) + 1 = 6; scale2stop = int(log(250/400)/log .75) = int(1.63) = 1;
    # stop_scale = 5; scale1 = 250/400, finest ceil(62.5) x 250
    plan = plan_pyramid(100, 400, sr=True)
    assert (plan.num_scales, plan.stop_scale, plan.real_shape) == (6, 5, (63, 250))
    assert plan.min_size == 18 and min(plan.shapes[0]) == 18

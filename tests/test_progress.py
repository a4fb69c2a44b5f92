"""Progress that tells the truth (issue 28): the share of the work, weighted by each stage's
cost; the time left from this run's own rate; the terminal's whole-run line; TensorBoard.
And main_train.py run as a user types it (no --quiet, --device auto, no --num_samples, with
--tensorboard): what the README promises of that run."""
import builtins
import json
import re

import pytest
import torch

import singan
from conftest import (assert_one_line_error, photo, run_here, run_script, smooth_image,
                      write_image)
from singan.errors import SinGANError
from singan.progress import ProgressEvent, WorkClock, format_seconds
from singan.methods.singan.train import SinGANTrainer


def test_work_is_weighted_by_each_stage_cost():
    clock = WorkClock({0: 1.0, 1: 3.0}, niter=10)
    assert clock.work_done(0, 0) == 0
    assert clock.work_done(0, 10) == clock.work_done(1, 0) == pytest.approx(0.25)
    assert clock.work_done(1, 5) == pytest.approx(0.625)
    assert clock.work_done(1, 10) == 1


def test_time_left_follows_overhead_plus_arithmetic():
    """Seconds per iteration a + b * cost: from two timed stages the fit is exact, so the time
    left is the truth (iterations left at each stage's rate, plus the stages' overhead)."""
    a, b = 0.05, 0.001
    costs = {0: 10.0, 1: 100.0, 2: 1000.0, 3: 5000.0}
    clock = WorkClock(costs, niter=100)
    assert clock.seconds_left(0, 0) is None          # nothing timed yet
    clock.timed(0, 100, 100 * (a + b * 10))
    clock.stage_overhead(2.0)
    clock.timed(1, 40, 40 * (a + b * 100))
    truth = 60 * (a + b * 100) + 100 * (a + b * 1000) + 100 * (a + b * 5000) + 2 * 2.0
    assert clock.seconds_left(1, 40) == pytest.approx(truth, rel=1e-6)


def test_one_timed_stage_gives_its_rate():
    clock = WorkClock({0: 2.0, 1: 8.0}, niter=10)
    clock.timed(0, 5, 1.0)                            # 0.2 s an iteration at cost 2
    assert clock.seconds_left(0, 5) == pytest.approx(5 * 0.2 + 10 * 0.8)


def test_summary_line_and_time_format():
    event = ProgressEvent("iteration", "singan", 8, 10, 100, 2000, {}, 5.0, work=0.31,
                          seconds_left=14 * 3600, unit="scale")
    assert event.summary() == "scale 8/9 · 31% of the work · about 14 h left"
    event.seconds_left = None
    assert event.summary().endswith("estimating the time left")
    assert format_seconds(42) == "42 s" and format_seconds(185) == "3 min 05 s"
    assert format_seconds(185, rough=True) == "3 min" and format_seconds(7800) == "2 h 10 min"


def test_singan_stage_costs_grow_with_size_and_channels():
    trainer = SinGANTrainer(torch.zeros(1, 3, 96, 128), singan.SinGANConfig(max_size=128))
    costs = [trainer.stage_cost(n) for n in range(trainer.plan.n_stages)]
    assert all(b > a for a, b in zip(costs, costs[1:]))
    assert costs[4] / costs[3] > 3      # the channels double at scale 4 (32 -> 64)


@pytest.mark.slow
def test_events_carry_work_and_time_left_and_tensorboard_reads_them_back(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from singan.apps.tensorboard_log import TensorBoardLog
    image = torch.from_numpy(smooth_image(24, 32)).permute(2, 0, 1)[None].float() / 127.5 - 1
    events = []
    board = TensorBoardLog(tmp_path / "tb")

    def both(event):
        events.append(event)
        board(event)
    singan.train_model(image, singan.SinGANConfig(max_size=32, min_size=19, niter=50),
                       tmp_path / "m", device="cpu", seed=0, show_progress=False,
                       progress=both, log=lambda _: None)
    board.close()
    works = [e.work for e in events]
    assert works == sorted(works) and works[-1] == 1.0
    assert events[0].seconds_left is not None and events[-1].seconds_left == 0
    stages = [e for e in events if e.kind == "stage"]
    assert [e.stage for e in stages] == [0, 1, 2]
    assert stages[1].noise_amp == pytest.approx(singan.load_model(tmp_path / "m").noise_amp[1])

    acc = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 0})
    acc.Reload()
    scalars = set(acc.Tags()["scalars"])
    for k in range(3):
        for name in ("errD", "errG", "rec", "D_real", "D_fake", "gradient_penalty"):
            assert f"scale {k}/{name}" in scalars, (k, name)
        assert [s.step for s in acc.Scalars(f"scale {k}/errD")] == [25, 50]
        for name in ("real", "fake", "reconstruction"):
            assert f"scale {k}/{name}" in acc.Tags()["images"]
    assert [s.step for s in acc.Scalars("noise_amp")] == [0, 1, 2]
    assert acc.Scalars("noise_amp")[0].value == 1.0
    last = [e for e in events if e.kind == "iteration" and e.stage == 2][-1]
    gp = acc.Scalars("scale 2/gradient_penalty")[-1].value
    assert gp == pytest.approx(last.losses["errD"] - last.losses["D_fake"] +
                               last.losses["D_real"], rel=1e-5) and gp >= 0


def test_tensorboard_without_the_package_is_one_line(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name.startswith("torch.utils.tensorboard") or name.startswith("tensorboard"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    from singan.apps.tensorboard_log import TensorBoardLog
    with pytest.raises(SinGANError, match="requirements-tensorboard.txt"):
        TensorBoardLog(tmp_path / "tb")
    (tmp_path / "Input").mkdir()
    write_image(tmp_path / "Input" / "x.png", smooth_image(24, 32))
    proc = run_here("main_train.py", "--input_dir", "Input", "--input_name", "x.png",
                    "--niter", "1", "--quiet", "--tensorboard", "tb", cwd=tmp_path,
                    monkeypatch=monkeypatch)
    assert_one_line_error(proc, "--tensorboard", "pip install")
    assert not (tmp_path / "TrainedModels").exists()


# ---- main_train.py as a user types it ------------------------------------------------------------

@pytest.fixture(scope="module")
def terminal_run(tmp_path_factory):
    """`main_train.py --device auto --tensorboard tb` on a 24 x 32 photo (3 scales, 30
    iterations each), without --quiet or --num_samples: (work folder, process)."""
    work = tmp_path_factory.mktemp("terminal")
    write_image(work / "Input" / "x.png", photo("chelsea.png", 24, 32))
    proc = run_script("main_train.py", "--input_dir", "Input", "--input_name", "x.png",
                      "--max_size", "32", "--min_size", "19", "--niter", "30", "--manualSeed",
                      "0", "--device", "auto", "--tensorboard", "tb", cwd=work)
    assert proc.returncode == 0, proc.stderr
    return work, proc


MODEL = "TrainedModels/x/scale_factor=0.750000,alpha=10"
RUN_LINE = re.compile(r"scale (\d+)/(\d+) · (\d+)% of the work · "
                      r"(about \d[^\r\n]* left|estimating the time left)")


@pytest.mark.slow
def test_the_terminal_shows_the_whole_runs_line(terminal_run):
    """The README's second line under the scale's bar, 'scale k/N · p% of the work · about t
    left', for every scale, p never going back and ending at 100; with each scale weighted by
    its work, the coarsest scale (the fewest pixels of three) is less than a third of it."""
    _, proc = terminal_run
    shown = [(int(k), int(n), int(p)) for k, n, p, _ in RUN_LINE.findall(proc.stderr)]
    assert shown, proc.stderr[-2000:]
    assert {k for k, _, _ in shown} == {0, 1, 2} and {n for _, n, _ in shown} == {2}
    shares = [p for _, _, p in shown]
    assert shares == sorted(shares) and shares[-1] == 100
    assert max(p for k, _, p in shown if k == 0) < 100 / 3
    assert "left" in RUN_LINE.findall(proc.stderr)[-1][3]


@pytest.mark.slow
def test_tensorboard_gets_real_event_files_from_main_train(terminal_run):
    """--tensorboard DIR: event files TensorBoard reads back, with each scale's losses and
    gradient penalty at its reported iterations, the noise amplitudes and the scales' images."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    work, _ = terminal_run
    assert list((work / "tb").glob("events.out.tfevents.*"))
    board = EventAccumulator(str(work / "tb"), size_guidance={"images": 0})
    board.Reload()
    for k in range(3):
        for name in ("errD", "errG", "rec", "D_real", "D_fake", "gradient_penalty"):
            assert [s.step for s in board.Scalars(f"scale {k}/{name}")] == [25, 30], (k, name)
        for name in ("real", "fake", "reconstruction"):
            assert f"scale {k}/{name}" in board.Tags()["images"]
    amps = singan.load_model(work / MODEL).noise_amp
    assert [s.step for s in board.Scalars("noise_amp")] == [0, 1, 2]
    assert [s.value for s in board.Scalars("noise_amp")] == pytest.approx(amps, rel=1e-6)


@pytest.mark.slow
def test_device_auto_trains_on_the_best_device_here(terminal_run):
    """--device auto: CUDA where there is one, else MPS, else the CPU (config.json says
    which device trained the model)."""
    work, _ = terminal_run
    expected = "cuda" if torch.cuda.is_available() else \
        "mps" if torch.backends.mps.is_available() else "cpu"
    device = json.loads((work / MODEL / "config.json").read_text())["device"]
    assert device.split(":")[0] == expected


@pytest.mark.slow
def test_main_train_writes_50_samples_by_default(terminal_run):
    work, _ = terminal_run
    out = work / "Output" / "RandomSamples" / "x" / "gen_start_scale=0"
    assert sorted(p.name for p in out.glob("*.png")) == sorted(f"{i}.png" for i in range(50))


@pytest.mark.parametrize("cuda, mps, expected", [(True, True, "cuda"), (False, True, "mps"),
                                                 (False, False, "cpu")])
def test_device_auto_prefers_cuda_then_mps_then_the_cpu(monkeypatch, cuda, mps, expected):
    from singan.devices import resolve_device
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert resolve_device("auto") == torch.device(expected)


# ---- the event's own figures, the clock's fits and the bars, each from a fact stated here -------

def _event(**kw):
    base = dict(kind="iteration", method="singan", stage=1, num_stages=4, iteration=50,
                total=200, losses={}, elapsed=1.0)
    return ProgressEvent(**{**base, **kw})


def test_the_gradient_penalty_is_what_errD_holds_beyond_the_wasserstein_term():
    # errD = D_fake - D_real + gp  =>  gp = errD - D_fake + D_real
    losses = {"errD": 1.5, "D_real": 2.0, "D_fake": -0.25}
    assert _event(losses=losses).gradient_penalty == pytest.approx(1.5 + 0.25 + 2.0)
    for missing in ("errD", "D_real", "D_fake"):
        partial = {k: v for k, v in losses.items() if k != missing}
        assert _event(losses=partial).gradient_penalty is None


def test_without_measured_work_the_fraction_counts_iterations():
    assert _event().fraction == pytest.approx((1 + 50 / 200) / 4)
    assert _event(work=0.7).fraction == 0.7
    assert _event(total=0, iteration=0, stage=2).fraction == pytest.approx(2 / 4)
    assert _event(num_stages=0, stage=0, iteration=0).fraction == 0


def test_the_summary_counts_stages_from_zero_and_rounds_the_share():
    event = _event(stage=0, num_stages=3, work=0.126, seconds_left=42, unit="stage")
    assert event.summary() == "stage 0/2 · 13% of the work · about 42 s left"


@pytest.mark.parametrize("seconds, exact, rough", [
    (-5, "0 s", "0 s"), (0.4, "0 s", "0 s"), (59.4, "59 s", "59 s"), (59.6, "1 min 00 s", "60 s"),
    (89, "1 min 29 s", "89 s"), (90, "1 min 30 s", "2 min"), (3599, "59 min 59 s", "60 min"),
    (3600, "1 h 00 min", "60 min"), (5399, "1 h 29 min", "90 min"), (5400, "1 h 30 min", "1.5 h"),
    (35999, "9 h 59 min", "10.0 h"), (36000, "10 h 00 min", "10 h"), (50400, "14 h 00 min", "14 h"),
])
def test_format_seconds_at_each_boundary(seconds, exact, rough):
    assert format_seconds(seconds) == exact
    assert format_seconds(seconds, rough=True) == rough


def test_work_done_never_passes_the_whole_and_survives_zero_costs():
    clock = WorkClock({0: 2.0, 1: 2.0}, niter=4)
    assert clock.work_done(1, 6) == 1.0                # more iterations than planned
    assert clock.work_done(1, 2) == pytest.approx(0.75)
    assert WorkClock({0: 0.0}, niter=3).work_done(0, 2) == 0


def test_untimed_or_empty_measurements_are_ignored():
    clock = WorkClock({0: 1.0, 1: 2.0}, niter=10)
    clock.timed(0, 0, 5.0)
    clock.timed(0, 5, 0.0)
    assert clock.per_iteration() is None and clock.seconds_left(0, 0) is None
    clock.timed(1, 2, 1.0)
    assert clock.rates == {1: (2, 1.0)}


def test_a_fit_with_a_negative_overhead_falls_back_to_the_rate_through_zero():
    """Costs 1 and 3 at 0.5 s and 2.5 s an iteration: the line through both has a = -0.5, so
    the clock fits t = b c alone, minimising sum n ((b c - t) / t)^2:
    b = sum(n c / t) / sum(n c^2 / t^2) = (2 + 1.2) / (4 + 1.44)."""
    clock = WorkClock({0: 1.0, 1: 3.0, 2: 10.0}, niter=10)
    clock.timed(0, 1, 0.5)
    clock.timed(1, 1, 2.5)
    a, b = clock.per_iteration()
    assert a == 0.0 and b == pytest.approx(3.2 / 5.44)
    assert clock.seconds_left(1, 4) == pytest.approx((6 * 3 + 10 * 10) * 3.2 / 5.44)


def test_stages_of_one_cost_give_the_rate_of_the_longest_timed():
    clock = WorkClock({0: 4.0, 1: 4.0, 2: 8.0}, niter=10)
    clock.timed(0, 10, 4.0)          # 0.4 s an iteration
    clock.timed(1, 30, 6.0)          # 0.2 s an iteration, over more iterations: this one
    assert clock.per_iteration() == (0.0, pytest.approx(0.2 / 4))
    assert clock.seconds_left(2, 0) == pytest.approx(10 * 8 * 0.05)


def test_the_overhead_of_the_stages_left_is_their_mean_so_far():
    clock = WorkClock({0: 1.0, 1: 1.0, 2: 1.0, 3: 1.0}, niter=10)
    clock.timed(0, 10, 1.0)                              # 0.1 s an iteration
    clock.stage_overhead(1.0)
    clock.stage_overhead(-4.0)                           # a clock step back counts as 0
    clock.stage_overhead(2.0)
    assert clock.overheads == [1.0, 0.0, 2.0]
    # stage 1 at iteration 10 (0 left), stages 2 and 3 whole, two overheads of mean 1
    assert clock.seconds_left(1, 10) == pytest.approx(2 * 10 * 0.1 + 2 * 1.0)


def test_an_exact_line_with_overhead_is_found():
    clock = WorkClock({0: 10.0, 1: 20.0}, niter=5)
    clock.timed(0, 5, 5 * (0.3 + 0.01 * 10))
    clock.timed(1, 5, 5 * (0.3 + 0.01 * 20))
    a, b = clock.per_iteration()
    assert a == pytest.approx(0.3) and b == pytest.approx(0.01)


def test_the_bars_show_the_losses_and_the_run_line(capsys):
    from singan.progress import ProgressBar, RunLine
    bar = ProgressBar("scale 2", niter=10, initial=3)
    assert bar.done == 3
    bar.update_to(7, {"errD": 1.23456, "errG": -0.5, "rec": 0.012345})
    assert bar.bar.n == 7 and bar.done == 7
    assert bar.bar.postfix == "D=1.235, G=-0.500, rec=0.0123"
    assert bar.bar.desc == "scale 2" and bar.bar.total == 10
    bar.close()
    line = RunLine()
    line.show(_event(stage=2, num_stages=3, work=0.5, seconds_left=None, unit="scale"))
    assert line.bar.desc == "scale 2/2 · 50% of the work · estimating the time left"
    line.close()
    assert "scale 2" in capsys.readouterr().err


def test_disabled_bars_are_silent(capsys):
    from singan.progress import ProgressBar, RunLine
    bar = ProgressBar("x", 5, enabled=False)
    bar.update_to(4, {"errD": 0.0, "errG": 0.0, "rec": 0.0})
    assert bar.done == 4 and bar.bar is None
    bar.close()
    line = RunLine(enabled=False)
    line.show(_event())
    line.close()
    assert capsys.readouterr().err == ""


def test_work_is_a_share_whatever_the_unit_of_the_costs():
    # the costs are any unit (docstring): tiny ones give the same shares as large ones
    clock = WorkClock({0: 0.01, 1: 0.03}, niter=10)
    assert clock.work_done(1, 5) == pytest.approx((0.1 + 0.15) / 0.4)


def test_nearly_equal_costs_cannot_split_overhead_from_arithmetic():
    """Costs 1 and 1 + 1e-7: the two-parameter fit is ill-conditioned (its determinant is a
    rounding error), so the clock fits the rate through zero: t / c, about 0.01."""
    clock = WorkClock({0: 1.0, 1: 1.0 + 1e-7, 2: 5.0}, niter=10)
    clock.timed(0, 1, 0.01)
    clock.timed(1, 1, 0.01 + 1e-10)
    a, b = clock.per_iteration()
    assert a == 0.0 and b == pytest.approx(0.01, rel=1e-6)


def test_a_time_that_does_not_grow_with_the_cost_is_all_overhead():
    # 0.5 s an iteration at costs 1 and 2: a = 0.5, b = 0 (exact in binary)
    clock = WorkClock({0: 1.0, 1: 2.0, 2: 3.0}, niter=10)
    clock.timed(0, 1, 0.5)
    clock.timed(1, 1, 0.5)
    assert clock.per_iteration() == (0.5, 0.0)
    assert clock.seconds_left(1, 10) == pytest.approx(10 * 0.5)


def test_the_rate_through_zero_holds_for_costs_in_small_units():
    """The negative-overhead case of above with costs a thousand times smaller: the same
    fallback, b = sum(n c / t) / sum(n c^2 / t^2)."""
    clock = WorkClock({0: 0.001, 1: 0.003}, niter=10)
    clock.timed(0, 1, 0.5)
    clock.timed(1, 1, 2.5)
    a, b = clock.per_iteration()
    assert a == 0.0 and b == pytest.approx(3.2e-3 / 5.44e-6)


def test_the_run_line_is_one_description_below_the_bar_and_goes_on_close(capsys):
    from singan.progress import RunLine
    line = RunLine()
    assert line.bar.dynamic_ncols                         # it follows the terminal's width
    event = _event(stage=1, num_stages=3, work=0.25, seconds_left=90, unit="scale")
    line.show(event)
    line.close()
    err = capsys.readouterr().err
    text = event.summary()
    assert "\n\r" + text + "\x1b[A" in err                 # one row down, then back up
    assert "\n\n" not in err and "\x1b[A\x1b[A" not in err    # one row, not two
    assert "it/s" not in err and "it [" not in err        # the description alone
    assert err.endswith(" " * len(text) + "\x1b[A")       # cleared when the run ends


def test_a_stage_bar_starts_at_zero_and_is_cleared_on_close(capsys):
    from singan.progress import ProgressBar
    bar = ProgressBar("scale 1", niter=10)
    assert bar.done == 0 and bar.bar.n == 0 and bar.bar.dynamic_ncols
    bar.update_to(3, {"errD": 1.5, "errG": 0.0, "rec": 0.0})
    # the losses are drawn with the next update, not by a second redraw of this one
    drawn = capsys.readouterr().err
    assert "D=1.500" not in drawn
    bar.close()
    err = drawn + capsys.readouterr().err
    assert "scale 1:" in err and "| 3/10 " not in err.splitlines()[-1]
    assert err.endswith("\r") and not err.endswith("\n")  # not left behind


@pytest.mark.parametrize("seconds, rough", [(5581, "1.6 h"), (41401, "12 h")])
def test_rough_hours_round_at_the_half(seconds, rough):
    # 5581 s = 1.5503 h; 41401 s = 11.5003 h
    assert format_seconds(seconds, rough=True) == rough


def test_the_summary_rounds_the_percentage():
    assert _event(work=0.7, seconds_left=None).summary().split(" · ")[1] == "70% of the work"

"""Progress that tells the truth (issue 28): the share of the work, weighted by each stage's
cost; the time left from this run's own rate; the terminal's whole-run line; TensorBoard."""
import builtins

import pytest
import torch

import singan
from conftest import assert_one_line_error, run_here, smooth_image, write_image
from singan.errors import SinGANError
from singan.progress import ProgressEvent, WorkClock, format_seconds
from singan.train import SinGANTrainer


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

"""One driver for every training, and a model interface that answers for itself.

Retraining one level of an existing model (ConSinGAN's fine-tuning, paint's colour-quantised
scale) runs through singan.driver like any training: a lock, a checksummed atomic save, a
config.json naming the method, progress events and should_stop; a kill -9 midway loses only
that run and leaves the source model untouched. A partly trained model of either method says
'k of N'. Options a method cannot honour are refused.
"""
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import (ROOT, assert_one_line_error, end_process_tree, run_here, smooth_image,
                      write_image)
from singan import ConSinGANConfig, SinGANConfig, TrainingStopped, load_model, train_model
from singan.apps.generation import open_model
from singan.apps.paint import kmeans_colours, quantised_model
from singan.checkpoint import CHECKSUM_KEY, CHECKPOINT_NAME, read_checkpoint
from singan.driver import RunOptions
from singan.methods.consingan.train import fine_tune
from singan.errors import SinGANError
from singan.image_io import read_image
from singan.imresize import imresize_to_shape
from singan.interface import APPLICATIONS, TrainedModel

SINGAN = SinGANConfig(max_size=32, min_size=16, niter=4, nfc=8, min_nfc=8)
HARMONIZATION = ConSinGANConfig(train_mode="harmonization", train_stages=3, min_size=16,
                                max_size=32, nfc=8, niter=4)


def folder_digest(folder: Path) -> dict:
    """Every file of a folder with its sha256: what 'untouched' means."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny SinGAN model and a tiny ConSinGAN harmonization model, trained once (the tests
    that use it are marked slow)."""
    root = tmp_path_factory.mktemp("design")
    image = write_image(root / "im.png", smooth_image(24, 32, seed=5))
    singan = train_model(image, SINGAN, root / "singan", seed=1, show_progress=False,
                         log=lambda s: None)
    consingan = train_model(image, HARMONIZATION, root / "consingan", seed=1,
                            show_progress=False, log=lambda s: None)
    naive = write_image(root / "naive.png", smooth_image(24, 32, seed=6))
    return root, singan, consingan, naive


def _naive_at_stage_zero(model, naive_path):
    return imresize_to_shape(read_image(naive_path), tuple(model.reals[0].shape[2:]))


# ---- the interface answers -------------------------------------------------------------------

@pytest.mark.slow
def test_both_models_answer_every_question(trained):
    _, singan, consingan, _ = trained
    for model, unit, starts, injection in ((singan, "scale", range(singan.num_scales),
                                            range(1, singan.num_scales)),
                                           (consingan, "stage", range(1), range(1))):
        assert isinstance(model, TrainedModel)
        assert model.unit == unit and model.complete
        assert model.planned_stages == len(model.reals) == model.num_scales
        assert model.sample_start_scales == starts and model.injection_scales == injection
        assert model.trained_real.shape == model.reals[-1].shape
        for application in APPLICATIONS:
            reason = model.unsupported(application)
            assert reason is None or (isinstance(reason, str) and len(reason) > 20)
    assert singan.unsupported("sr") is None and "SinGAN" in consingan.unsupported("sr")
    assert consingan.unsupported("fine_tune") is None and singan.unsupported("fine_tune")
    assert singan.output_tag == "" and consingan.output_tag == "consingan"
    assert "all 3 stages trained" in consingan.describe()


@pytest.mark.slow
@pytest.mark.parametrize("config, unit, planned", [(SINGAN, "scales", 4),
                                                   (HARMONIZATION, "stages", 3)])
def test_a_partly_trained_model_says_k_of_n(tmp_path, config, unit, planned):
    """Stopped after its first level, either method's model says '1 of N' (ConSinGAN's used to
    trim its reals and say '1 of 1'). 24 x 32 px at max_size 32, min_size 16: SinGAN plans 4
    scales (32 * 0.75 ** 3 = 13.5 < 16 <= 18), ConSinGAN its 3 stages."""
    image = write_image(tmp_path / "im.png", smooth_image(24, 32, seed=5))
    calls = []

    def stop_after_stage_zero():
        calls.append(1)
        return len(calls) > config.niter
    with pytest.raises(TrainingStopped):
        train_model(image, config, tmp_path / "m", show_progress=False, log=lambda s: None,
                    should_stop=stop_after_stage_zero)
    model = load_model(tmp_path / "m")
    assert (model.num_scales, model.planned_stages, model.complete) == (1, planned, False)
    assert len(model.reals) == planned
    with pytest.raises(SinGANError, match=f"1 of {planned} {unit} trained"):
        open_model(tmp_path / "m")


# ---- retraining one level through the driver -------------------------------------------------

@pytest.mark.slow
def test_fine_tuning_reports_progress_stops_and_leaves_the_source_alone(trained, tmp_path):
    root, _, consingan, naive_path = trained
    source = root / "consingan"
    before = folder_digest(source)
    ckpt = read_checkpoint(source / CHECKPOINT_NAME)
    naive = _naive_at_stage_zero(consingan, naive_path)
    events = []
    with pytest.raises(TrainingStopped, match="source model is untouched"):
        fine_tune(ckpt, naive, tmp_path / "tuned", niter=30, source_folder=source,
                  run=RunOptions(show_progress=False, log=lambda s: None,
                                 progress=events.append, should_stop=lambda: len(events) >= 1))
    assert events and events[0].kind == "iteration" and events[0].stage == 2
    assert not (tmp_path / "tuned" / CHECKPOINT_NAME).exists()
    assert folder_digest(source) == before

    events.clear()
    model = fine_tune(ckpt, naive, tmp_path / "tuned", niter=4, source_folder=source,
                      naive_name="naive.png", run=RunOptions(show_progress=False,
                                                             log=lambda s: None,
                                                             progress=events.append))
    assert [e.kind for e in events][-1] == "stage" and model.fine_tuned["niter"] == 4
    saved = torch.load(tmp_path / "tuned" / CHECKPOINT_NAME, weights_only=True)
    assert CHECKSUM_KEY in saved and saved["fine_tuned"]["naive_img"] == "naive.png"
    config = json.loads((tmp_path / "tuned" / "config.json").read_text())
    assert config["method"] == "consingan" and config["fine_tuned"]["niter"] == 4
    assert folder_digest(source) == before
    # The same fine-tuning again is found and returned, not redone.
    logs = []
    again = fine_tune(ckpt, naive, tmp_path / "tuned", niter=4, source_folder=source,
                      naive_name="naive.png", run=RunOptions(show_progress=False, log=logs.append))
    assert "reusing" in logs[0]
    assert torch.equal(next(again.generator.parameters()), next(model.generator.parameters()))


@pytest.mark.slow
def test_the_quantised_paint_model_is_saved_like_any_model(trained, tmp_path):
    root, singan, _, _ = trained
    before = folder_digest(root / "singan")
    centres = kmeans_colours(singan.reals[1])
    events = []
    painted = quantised_model(singan, root / "singan", tmp_path / "paint", 1, centres, SINGAN,
                              RunOptions(seed=0, show_progress=False, log=lambda s: None,
                                         progress=events.append))
    saved = torch.load(tmp_path / "paint" / CHECKPOINT_NAME, weights_only=True)
    assert CHECKSUM_KEY in saved and saved["paint"]["start_scale"] == 1
    read_checkpoint(tmp_path / "paint" / CHECKPOINT_NAME)     # the checksum verifies
    config = json.loads((tmp_path / "paint" / "config.json").read_text())
    assert config["method"] == "singan" and config["config"]["paint_colours"] == 5
    assert events[-1].kind == "stage" and events[-1].stage == 1
    # Every scale but the retrained one is the source's.
    for n, (a, b) in enumerate(zip(singan.generators, painted.generators)):
        same = all(torch.equal(x, y) for x, y in zip(a.state_dict().values(),
                                                     b.state_dict().values()))
        assert same == (n != 1), n
    assert folder_digest(root / "singan") == before
    with pytest.raises(TrainingStopped, match="source model is untouched"):
        quantised_model(singan, root / "singan", tmp_path / "paint2", 1, centres, SINGAN,
                        RunOptions(seed=0, show_progress=False, log=lambda s: None,
                                   should_stop=lambda: True))
    assert not (tmp_path / "paint2" / CHECKPOINT_NAME).exists()


def _kill_when(proc, path: Path, timeout: float = 300) -> None:
    """kill -9 the process as soon as `path` exists (the retraining has begun)."""
    deadline = time.monotonic() + timeout
    try:
        while not path.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the retraining never started"
            time.sleep(0.05)
    finally:
        end_process_tree(proc)        # also when it never started: 100000 iterations


@pytest.mark.slow
def test_kill_9_during_fine_tuning_loses_only_that_run(trained, tmp_path):
    """The fine-tuning process killed midway: the source is byte-for-byte as before, the target
    holds no model, and the same command afterwards fine-tunes it."""
    root, _, _, naive = trained
    source = root / "consingan"
    before = folder_digest(source)
    args = [sys.executable, str(ROOT / "main_train.py"), "--fine_tune", "--model_dir",
            str(source), "--naive_img", str(naive), "--manualSeed", "1", "--niter", "100000",
            "--quiet"]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    # The fine-tuned model goes beside the source (evaluate.finetuned_folder).
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    tuned = source.parent / f"{source.name}_finetuned_naive"
    _kill_when(proc, tuned / "config.json")
    assert not (tuned / CHECKPOINT_NAME).exists()
    assert folder_digest(source) == before
    done = subprocess.run(args[:-3] + ["--niter", "3", "--quiet"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert read_checkpoint(tuned / CHECKPOINT_NAME)["fine_tuned"]["niter"] == 3
    assert folder_digest(source) == before


@pytest.mark.slow
def test_kill_9_during_the_quantised_paint_retraining_loses_only_that_run(trained, tmp_path):
    """paint2image.py --quantization_flag killed while it retrains its scale: the source model
    is byte-for-byte as before, the paint model folder holds no model, and the same command
    afterwards makes it (checksummed)."""
    root, _, _, naive = trained
    source = root / "singan"
    before = folder_digest(source)
    paint = source.parent / f"{source.name}_paint" / "start_scale=1"
    args = [sys.executable, str(ROOT / "paint2image.py"), "--input_dir", str(root),
            "--input_name", "im.png", "--ref_dir", str(root), "--ref_name", naive.name,
            "--model_dir", str(source), "--paint_start_scale", "1", "--quantization_flag",
            "--nfc", "8", "--min_nfc", "8", "--quiet", "--manualSeed", "1"]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.Popen(args + ["--niter", "100000"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _kill_when(proc, paint / "config.json")
    assert not (paint / CHECKPOINT_NAME).exists()
    assert folder_digest(source) == before
    done = subprocess.run(args + ["--niter", "3"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert read_checkpoint(paint / CHECKPOINT_NAME)["paint"]["start_scale"] == 1
    assert folder_digest(source) == before


# ---- options a method cannot honour ----------------------------------------------------------

@pytest.mark.parametrize("option", [["--scale_factor", "0.5"], ["--min_nfc", "16"],
                                    ["--lr_milestone", "10"], ["--legacy_g_steps"],
                                    ["--scale_f=0.5"]])
def test_singan_options_are_refused_for_consingan(tmp_path, monkeypatch, option):
    proc = run_here("main_train.py", "--model", "consingan", "--input_name", "rocket.png",
                    *option, cwd=tmp_path, monkeypatch=monkeypatch)
    assert proc.returncode == 2
    name = "scale_factor" if option[0].startswith("--scale_f") else option[0][2:]
    assert_one_line_error(proc, f"--{name}", "SinGAN option", "ConSinGAN")

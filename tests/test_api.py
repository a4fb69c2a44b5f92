"""The one interface for both methods (singan.train_model, singan.load_model, TrainedModel):
progress events, stopping with should_stop and resuming to the same model as an uninterrupted
run, and the exact (unfolded) drawing path against the reference model at other sizes."""
import ast
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import singan
from conftest import ROOT, smooth_image
from singan import (ConSinGANConfig, SinGANConfig, TrainedModel, TrainingStopped, load_model,
                    train_model)
from singan.imresize import imresize
from singan.methods.singan.models import pad

CONFIGS = {
    "singan": SinGANConfig(max_size=32, min_size=21, nfc=16, min_nfc=16, niter=30),
    "consingan": ConSinGANConfig(train_stages=3, max_size=32, min_size=16, nfc=16, niter=30),
}


def image() -> torch.Tensor:
    pixels = torch.from_numpy(smooth_image(28, 32, seed=2)).float()
    return (pixels.permute(2, 0, 1)[None] / 255) * 2 - 1           # [1, 3, 28, 32] in [-1, 1]


def same_weights(a: TrainedModel, b: TrainedModel) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["singan", "consingan"])
def test_stop_then_resume_equals_an_uninterrupted_run(method, tmp_path):
    cfg = CONFIGS[method]
    whole = train_model(image(), cfg, tmp_path / "whole", device="cpu", seed=3,
                        show_progress=False, log=lambda _: None)
    assert isinstance(whole, TrainedModel) and whole.method == method and whole.complete

    events, calls = [], [0]

    def stop_after_40():            # stage 0 (30 iterations) finishes; stage 1 stops at 10
        calls[0] += 1
        return calls[0] > 40
    with pytest.raises(TrainingStopped) as stopped:
        train_model(image(), cfg, tmp_path / "cut", device="cpu", seed=3, show_progress=False,
                    progress=events.append, should_stop=stop_after_40, log=lambda _: None)
    assert isinstance(stopped.value, singan.SinGANError)
    assert stopped.value.stages_done == 1 and "0-0" in str(stopped.value)
    assert "resume" in str(stopped.value)
    iterations = [e for e in events if e.kind == "iteration"]
    assert [(e.stage, e.iteration) for e in iterations] == [(0, 25), (0, 30)]
    assert all(e.method == method and e.num_stages == whole.num_scales and e.total == 30
               for e in events)
    assert set(iterations[0].losses) == {"errD", "errG", "rec", "D_real", "D_fake"}
    assert iterations[1].elapsed >= iterations[0].elapsed > 0
    finished = [e for e in events if e.kind == "stage"]
    assert len(finished) == 1 and finished[0].images["fake"].shape[:2] == (1, 3)
    partial = load_model(tmp_path / "cut")
    assert partial.num_scales == 1 and not partial.complete

    resumed = train_model(image(), cfg, tmp_path / "cut", device="cpu", seed=3,
                          show_progress=False, log=lambda _: None)
    assert resumed.num_scales == whole.num_scales > 1 and same_weights(resumed, whole)
    loaded = load_model(tmp_path / "cut")
    assert type(loaded) is type(whole) and loaded.folder == tmp_path / "cut"
    assert same_weights(loaded, whole)


def test_load_model_picks_the_class_from_the_checkpoint(tmp_path):
    with pytest.raises(singan.SinGANError, match="not found"):
        load_model(tmp_path / "nothing")
    with pytest.raises(singan.SinGANError, match="SinGANConfig or a ConSinGANConfig"):
        train_model(image(), {"niter": 1}, tmp_path / "m")
    with pytest.raises(singan.SinGANError, match="needs model_dir"):
        train_model(image(), CONFIGS["singan"])


MODEL_CLASSES = r"(TrainedPyramid|ConSinGAN|SinGANConfig|ConSinGANConfig|SinGANTrainer|" \
                r"ConSinGANTrainer)"
METHOD_BRANCHES = [
    r"\.method\s*(==|!=|\bin\b|\bnot in\b)",                 # model.method == ...
    # ... == "singan"; except args.model: --model is the user's choice of method (config.py)
    r"(?<!args\.model )(==|!=)\s*[\"'](singan|consingan)[\"']",
    r"[\"'](singan|consingan)[\"']\s*(==|!=)",
    r"isinstance\([^)]*\b" + MODEL_CLASSES + r"\b",            # isinstance(model, ConSinGAN)
    r"type\([^)]*\)\s*(is|==)",                                 # type(config) is ...
    r"\b(TRAINERS|LOADERS|REFERENCE_IMPORTERS)\b",              # api.py's tables
    r"getattr\([^)]*method",
]


def test_no_caller_branches_on_the_method():
    """Outside singan/api.py's tables, no code asks which method a model or config is: no
    comparison of .method or of a method's name, no isinstance / type() on a model, config or
    trainer class, no reading api's tables (the interface's members answer instead). And no
    library module imports inside a function to dodge an import cycle."""
    sources = list((ROOT / "singan").rglob("*.py")) + list(ROOT.glob("*.py"))
    found = []
    for path in sources:
        text = path.read_text()
        if path != ROOT / "singan" / "api.py":
            for pattern in METHOD_BRANCHES:
                for match in re.finditer(pattern, text):
                    line = text.count("\n", 0, match.start()) + 1
                    found.append(f"{path.relative_to(ROOT)}:{line}: {match.group(0)}")
        if path.is_relative_to(ROOT / "singan"):
            assert not re.search(r"^[ \t]+from \.", text, re.M), path
    assert not found, "\n".join(found)


def test_no_function_in_the_library_runs_over_80_lines():
    """Thin adapters and readable modules: every function of singan/ fits on a screen."""
    long = []
    for path in sorted((ROOT / "singan").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > 80:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} {length}")
    assert not long, long


def test_the_branch_check_can_fail():
    """The patterns above catch the branches they name (so the test above can fail)."""
    samples = ['if model.method == "singan":', "isinstance(model, TrainedPyramid)",
               "api.TRAINERS.get(type(config))", "x = 'consingan' != name",
               "if type(config) is SinGANConfig:"]
    for sample in samples:
        assert any(re.search(p, sample) for p in METHOD_BRANCHES), sample


def test_exact_drawing_reproduces_the_unfolded_network_at_other_sizes(reference):
    """The parity path (noise given) runs the generators as trained: at scale_v 1.25 and
    scale_h 1.5 it equals a plain transcription of the reference's SinGAN_generate (SPEC 7)
    with the reference model's own networks, to float rounding."""
    model = load_model(reference / "tiny_model/TrainedModels/colusseum/"
                                   "scale_factor=0.750000,alpha=10")
    for scale_v, scale_h in ((1.0, 1.0), (1.25, 1.5)):
        gen = torch.Generator().manual_seed(1)
        noise = []
        for n in range(model.num_scales):
            h, w = model.z_opt[n].shape[2] - 10, model.z_opt[n].shape[3] - 10
            noise.append(torch.randn(2, 1 if n == 0 else 3, round(h * scale_v),
                                     round(w * scale_h), generator=gen))
        ours = model.sample(2, scale_v=scale_v, scale_h=scale_h, noise=noise)
        x = None
        with torch.no_grad():
            for n, g in enumerate(model.generators):
                z = pad(noise[n].expand(2, 3, -1, -1), 5)
                if x is None:
                    prev = torch.zeros(2, 3, *z.shape[2:])
                else:
                    h, w = model.reals[n].shape[2:]
                    prev = imresize(x, 1 / model.scale_factor)
                    prev = prev[:, :, :round(scale_v * h), :round(scale_h * w)]
                    prev = pad(prev, 5)[:, :, :z.shape[2], :z.shape[3]]
                    if prev.shape[2:] != z.shape[2:]:
                        prev = torch.nn.functional.interpolate(prev, size=z.shape[2:],
                                                               mode="bilinear",
                                                               align_corners=True)
                x = g(model.noise_amp[n] * z + prev, prev)
        assert ours.shape == x.shape
        assert (ours - x).abs().max() <= 1e-6, (scale_v, scale_h)

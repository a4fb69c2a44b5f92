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


# The layers of singan/, lowest first: each module imports only from its own layer or below,
# and the two methods' folders, like the studio and the cluster runner, never import each other.
LAYERS = {"core": 0, "methods": 1, "api": 2, "apps": 3, "studio": 4, "cluster": 4, "entry": 5}
ENTRY = {"singan", "singan.__main__", "singan.hparams", "singan.pyramid", "singan.models"}


def layer_of(module: str):
    """(layer, group) of a module of singan/: the entry points (the package, the scripts'
    modules, the re-exporting old paths) on top, the pieces neither method owns at the bottom."""
    parts = module.split(".")
    if module in ENTRY or parts[1] in ("cli", "consingan"):
        return LAYERS["entry"], "entry"
    if parts[1] == "methods" and len(parts) > 2:
        return LAYERS["methods"], parts[2]
    if parts[1] in LAYERS and parts[1] != "core":
        return LAYERS[parts[1]], parts[1]
    return (LAYERS["api"], "api") if module == "singan.api" else (LAYERS["core"], "core")


def imports_of(path: Path):
    """The singan modules (or packages) that a file of singan/ imports."""
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            for name in ([target] + [f"{target}.{a.name}" for a in node.names]):
                if name.startswith("singan") and (
                        (ROOT / (name.replace(".", "/") + ".py")).is_file()
                        or (ROOT / name.replace(".", "/") / "__init__.py").is_file()):
                    yield name
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("singan."))


def test_layers_import_downwards():
    """core < methods/singan, methods/consingan < api < apps < studio, cluster < cli and the
    package: nothing imports upwards or sideways (the applications never see the studio's web
    framework nor Ray), so the folders can be read bottom up."""
    wrong = []
    for path in sorted((ROOT / "singan").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        here, group = layer_of(module)
        for target in imports_of(path):
            there, other = layer_of(target)
            if there > here or (there == here and group != other and here in (1, 4)):
                wrong.append(f"{module} ({group}) imports {target} ({other})")
    assert not wrong, wrong
    assert layer_of("singan.apps.sr") == (3, "apps") and layer_of("singan.driver") == (0, "core")
    assert layer_of("singan.methods.singan.train") == (1, "singan")


def test_the_applications_import_no_web_framework_nor_ray():
    for path in sorted((ROOT / "singan" / "apps").rglob("*.py")):
        text = path.read_text()
        for name in ("gradio", "starlette", "fastapi", "uvicorn", "ray"):
            assert not re.search(rf"^\s*(import|from) {name}\b", text, re.M), (path, name)


# Signatures longer than 8 parameters that stay: public entry points whose keyword arguments
# callers use by name (train_model's are the README's), the web studio's and the Ray tasks'.
# No new ones: a run's options travel as one driver.RunOptions.
LONG_SIGNATURES = {
    "api.py:train_model", "apps/paint.py:paint2image",
    "apps/animation.py:animation", "apps/animation.py:write_animations",
    "apps/sr.py:super_resolution", "apps/harmonize.py:masked_injection",
    "apps/generation.py:random_samples",
    "interface.py:sample", "methods/singan/model.py:sample", "methods/singan/model.py:synthesize",
    "methods/consingan/model.py:sample", "methods/consingan/model.py:checkpoint_dict",
    "methods/singan/train.py:__init__", "methods/singan/train.py:train_scale",
    "methods/consingan/train.py:make_stage",
    "cluster/many.py:_train_task", "cluster/many.py:_sample_task",
    "cluster/many.py:_evaluate_task", "cluster/many.py:train_folder",
    "cluster/many.py:sample_folder", "cluster/many.py:evaluate_folder",
    "cluster/ray_runner.py:run_tasks", "cluster/ray_runner.py:__init__",
    "studio/page.py:serve", "studio/page.py:build_studio", "studio/actions.py:__init__",
    "studio/actions.py:train", "studio/actions.py:animation", "studio/jobs.py:animate",
    "studio/jobs.py:harmonize", "studio/jobs.py:draw_samples"}


def test_no_new_function_takes_more_than_8_parameters():
    long = set()
    for path in sorted((ROOT / "singan").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args
                names = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs
                         if a.arg not in ("self", "cls")]
                if len(names) + bool(args.vararg) + bool(args.kwarg) > 8:
                    long.add(f"{path.relative_to(ROOT / 'singan').as_posix()}:{node.name}")
    assert long <= LONG_SIGNATURES, sorted(long - LONG_SIGNATURES)
    assert "driver.py:train_stages" not in long and "driver.py:run_iterations" not in long


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

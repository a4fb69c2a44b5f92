"""Folders written by the reference ConSinGAN code: parity with its outputs on the tiny model in
../shared/reference/tiny_consingan, and the import's refusals (damaged folders, G.pth); a
folder of the reference SinGAN code, whose pickled Gs.pth is never opened."""
import json
import os
import pickle
import shutil
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from conftest import run_script
from singan import load_model
from singan.api import import_reference_folder, train_model
from singan.methods.consingan import ConSinGANConfig
from singan.methods.consingan.reference import import_reference_consingan
from singan.errors import SinGANError
from singan.catalog import (is_reference_consingan_folder, is_reference_folder,
                            is_reference_singan_folder)

TOLERANCE = 1e-5   # the reference's README: float32 rounding (it can be exact)


@pytest.fixture(scope="module")
def tiny(reference):
    """(the reference model folder, its outputs folder)."""
    root = reference / "tiny_consingan"
    folder, = (root / "TrainedModels" / "chelsea_tiny").iterdir()
    return folder, root / "outputs"


@pytest.fixture(scope="module")
def model(tiny):
    return load_model(tiny[0])


def copy_of(folder, dst):
    """A copy of the reference folder (its critics left out: the import never reads them)."""
    shutil.copytree(folder, dst, ignore=shutil.ignore_patterns("netD.pth"))
    return dst


def noise_of(outputs, i, num_stages=3):
    return [torch.from_numpy(np.load(outputs / f"noise_s{k}_i{i}.npy")) for k in range(num_stages)]


def max_diff(ours: torch.Tensor, path) -> float:
    theirs = np.load(path)
    assert tuple(ours.shape) == theirs.shape
    return float(np.abs(ours.numpy() - theirs).max())


def test_load_model_gives_the_reference_consingan(model, tiny):
    index = json.loads((tiny[1] / "index.json").read_text())
    assert model.method == "consingan" and model.num_scales == 3 and model.complete
    assert model.train_mode == index["train_mode"] == "generation"
    assert model.noise_amp == pytest.approx(index["noise_amp"], abs=0)
    assert [list(r.shape) for r in model.reals] == index["reals_shapes"]
    assert model.plan.shapes == [tuple(s[2:]) for s in index["reals_shapes"]]
    assert model.hparams.max_size == 48 and model.hparams.min_size == 25
    assert model.folder == tiny[0]


@pytest.mark.parametrize("i", range(3))
def test_samples_match_the_reference_given_its_noise(model, tiny, i):
    outputs = tiny[1]
    noise = noise_of(outputs, i)
    assert max_diff(model.run_generator(noise), outputs / f"sample_{i}.npy") <= TOLERANCE
    assert max_diff(model.sample(1, noise=noise), outputs / f"sample_{i}.npy") <= TOLERANCE


def test_reconstruction_matches_the_reference(model, tiny):
    assert max_diff(model.reconstruct(), tiny[1] / "reconstruction.npy") <= TOLERANCE


def test_g_pth_is_never_opened(tiny, tmp_path, monkeypatch):
    folder = copy_of(tiny[0], tmp_path / "m")
    (folder / "G.pth").write_bytes(b"garbage: unpickling this would fail")
    opened = []
    real_load = torch.load

    def recording_load(f, *args, **kwargs):
        opened.append(str(f))
        assert kwargs.get("weights_only") is True, f
        return real_load(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", recording_load)
    loaded = import_reference_consingan(folder)
    assert opened and "G.pth" not in {Path(path).name for path in opened}, opened
    assert loaded.num_scales == 3


def test_one_entry_picks_the_method_and_refuses_singan_options(tiny):
    folder = tiny[0]
    assert is_reference_folder(folder) and is_reference_consingan_folder(folder)
    assert not is_reference_singan_folder(folder)
    assert import_reference_folder(folder).method == "consingan"
    with pytest.raises(SinGANError, match="scale_factor is for SinGAN"):
        load_model(folder, scale_factor=0.75)


def test_singan_reference_folder_still_imports(reference):
    folder = (reference / "tiny_model" / "TrainedModels" / "colusseum"
              / "scale_factor=0.750000,alpha=10")
    assert is_reference_singan_folder(folder) and not is_reference_consingan_folder(folder)
    assert import_reference_folder(folder).method == "singan"


class _Pickled:
    """What unpickling Gs.pth would run: a command that leaves a file behind."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def singan_folder_with_a_booby_trapped_gs_pth(reference, tmp_path):
    """A copy of the reference SinGAN tiny model whose Gs.pth, when unpickled, would create
    tmp_path/pwned (and is not even a torch file): (folder, marker)."""
    source = reference / "tiny_model" / "TrainedModels" / "colusseum"
    folder = tmp_path / "TrainedModels" / "colusseum" / "scale_factor=0.750000,alpha=10"
    shutil.copytree(source / folder.name, folder, ignore=shutil.ignore_patterns("netD.pth"))
    marker = tmp_path / "pwned"
    (folder / "Gs.pth").write_bytes(pickle.dumps(_Pickled(marker)))
    return folder, marker


def test_singan_gs_pth_is_never_opened(reference, tmp_path, monkeypatch):
    """The README: a SinGAN reference folder's pickled Gs.pth is never loaded. In this
    process: every torch.load is weights-only and none reads Gs.pth, and no file is opened
    under that name; the trap stays shut."""
    folder, marker = singan_folder_with_a_booby_trapped_gs_pth(reference, tmp_path)
    loaded, opened = [], []
    real_load, real_open = torch.load, open

    def recording_load(f, *args, **kwargs):
        loaded.append(Path(str(f)).name)
        assert kwargs.get("weights_only") is True, f
        return real_load(f, *args, **kwargs)

    def recording_open(file, *args, **kwargs):
        opened.append(Path(str(file)).name)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(torch, "load", recording_load)
    monkeypatch.setattr("builtins.open", recording_open)
    model = load_model(folder)
    assert model.method == "singan" and model.num_scales == 3
    assert loaded and "Gs.pth" not in loaded and "Gs.pth" not in opened, (loaded, opened)
    assert not marker.exists()
    monkeypatch.undo()
    pickle.loads((folder / "Gs.pth").read_bytes())      # the trap works, once opened
    assert marker.exists()


def test_random_samples_script_never_opens_singan_gs_pth(reference, tmp_path):
    """The same end to end: random_samples.py on the trapped folder draws its samples, and
    the file the pickle would create does not appear."""
    folder, marker = singan_folder_with_a_booby_trapped_gs_pth(reference, tmp_path)
    proc = run_script("random_samples.py", "--model_dir", folder, "--num_samples", "2",
                      "--device", "cpu", "--manualSeed", "1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    samples = list((tmp_path / "Output" / "RandomSamples").rglob("*.png"))
    assert sorted(p.name for p in samples if p.parent.name == "gen_start_scale=0") == \
        ["0.png", "1.png"]
    assert not marker.exists()


@pytest.mark.parametrize("missing", ["2/netG.pth", "fixed_noise.pth", "noise_amp.pth",
                                     "reals.pth", "parameters.txt"])
def test_incomplete_folder_names_the_missing_file(tiny, tmp_path, missing):
    folder = copy_of(tiny[0], tmp_path / "m")
    (folder / missing).unlink()
    with pytest.raises(SinGANError) as err:
        load_model(folder)
    message = str(err.value)
    assert len(message.splitlines()) == 1 and "missing file" in message
    assert str(folder / missing) in message


def test_mixed_up_folder_is_refused(tiny, tmp_path):
    folder = copy_of(tiny[0], tmp_path / "m")
    (folder / "2" / "netG.pth").write_bytes((folder / "1" / "netG.pth").read_bytes())
    with pytest.raises(SinGANError, match="does not hold a generator of 3 stages"):
        load_model(folder)


def test_training_over_a_reference_folder_is_refused(tiny, tmp_path):
    folder = copy_of(tiny[0], tmp_path / "m")
    before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    image = torch.rand(1, 3, 32, 48) * 2 - 1
    with pytest.raises(SinGANError, match="reference"):
        train_model(image, ConSinGANConfig(train_stages=2, niter=1, max_size=48), folder,
                    device="cpu", show_progress=False, log=lambda _: None)
    assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == before


def test_random_samples_script_on_a_reference_folder(tiny, tmp_path):
    folder = copy_of(tiny[0], tmp_path / "TrainedModels" / "chelsea_tiny" / tiny[0].name)
    proc = run_script("random_samples.py", "--model_dir", folder, "--num_samples", "2",
                      "--device", "cpu", "--manualSeed", "1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = tmp_path / "Output" / "RandomSamples" / "chelsea_tiny" / folder.name / "gen_start_scale=0"
    assert sorted(p.name for p in out.glob("*.png")) == ["0.png", "1.png"]
    assert iio.imread(out / "1.png").shape == (32, 48, 3)

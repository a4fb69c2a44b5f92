"""What trains fastest on this machine, measured once and remembered: the memory layout of
the training networks under --amp bf16 on a CPU, and how much faster bf16 trains than fp32
there (the hint an fp32 training prints). Used by SinGAN and ConSinGAN alike.

Probe, don't assume: oneDNN runs bfloat16 convolutions 2-2.5x faster in channels-last than in
NCHW on CPUs with AMX tiles, but on others (AVX2, and this project's AVX512_BF16 machine)
channels-last gains nothing on the convolutions and loses on the BatchNorm double backward of
the gradient penalty, whose autograd formulas leave some of their results in NCHW. So the
choice is measured, and channels-last taken only where it is clearly faster (CLEARLY_FASTER): a few seconds, once per CPU, torch version and thread count, on a small
step of the same kind as the finest scales' (a 128-channel critic step with its gradient
penalty and a generator step at 72 x 96, under the same autocast: about 6 seconds on 2
cores), and kept in a JSON file
(SINGAN_CACHE_DIR, else $XDG_CACHE_HOME/singan or ~/.cache/singan). SINGAN_LAYOUT=nchw or
channels_last overrides it (benchmarks, tests).

fp32 always trains in NCHW: its numbers stay the reference's, bit for bit. Trainings too
small to gain seconds from the choice (less than PROBE_WORK) take NCHW without probing.
"""
import json
import os
import time
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .devices import autocast_context, cpu_flags, cpu_name
from .errors import SinGANError
from .image_io import atomic_write_bytes
from .losses import critic_loss, generator_adversarial_loss, gradient_penalty

LAYOUTS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}
CACHE_NAME = "tuning.json"
# A training's work below which no probe is run (a trainer's stage_cost summed over its
# stages, times its iterations: multiply-adds of one network pass; 5e11 is about 8 minutes
# of fp32 training on a 2-core CPU).
PROBE_WORK = 5e11
# Channels-last is taken only where the probe measures it this much faster than NCHW: on
# AMX CPUs it is about 2x, on this project's AVX512_BF16 machine the two were within 10% of
# each other either way from one probe to the next (a 72 x 96 probe at 2 threads: 0.50 s
# NCHW, 0.52 s channels-last), and the real step at the finest scales ran 7-20% faster in
# NCHW (benchmarks/bench_train.py --layout).
CLEARLY_FASTER = 0.9
# bf16 against fp32 judged over seeds (benchmarks/quality_vs_time.py --ladder amp: SIFID
# and diversity within the bounds); the hint says so only while this holds.
BF16_SAMPLES_AS_GOOD = True


def native_bf16(device) -> bool:
    """Whether `device` is a CPU that computes bfloat16 convolutions natively (AVX512_BF16 or
    AMX; elsewhere oneDNN emulates them, many times slower than fp32)."""
    if torch.device(device).type != "cpu":
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def to_layout(t: torch.Tensor, layout: torch.memory_format) -> torch.Tensor:
    """A 4-d tensor in channels-last when `layout` is (itself when it already is); with NCHW
    every tensor stays as it is, so that an NCHW training is bit for bit today's."""
    if layout == torch.channels_last and t.dim() == 4:
        return t.contiguous(memory_format=layout)
    return t


# ---- the probe ---------------------------------------------------------------------------------

def _probe_networks(channels: int = 128, layers: int = 5):
    """A SinGAN-like critic and generator: conv 3x3 -> BatchNorm -> LeakyReLU(0.2) blocks of
    `channels`, a 1- or 3-channel conv tail (the finest scales' networks)."""
    def net(out_channels):
        blocks = [nn.Conv2d(3, channels, 3), nn.BatchNorm2d(channels), nn.LeakyReLU(0.2, True)]
        for _ in range(layers - 2):
            blocks += [nn.Conv2d(channels, channels, 3), nn.BatchNorm2d(channels),
                       nn.LeakyReLU(0.2, True)]
        return nn.Sequential(*blocks, nn.Conv2d(channels, out_channels, 3))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return net(1), net(3)


def _probe_step(D, G, real, z, autocast):
    """One critic step with its gradient penalty and one generator step, as the finest
    scales train (without the optimisers' updates: the same for every layout)."""
    D.zero_grad(set_to_none=True)
    G.zero_grad(set_to_none=True)
    with autocast():
        with torch.no_grad():
            fake = G(z)
        err_d = critic_loss(D(real), D(fake)) + gradient_penalty(D, real, fake, 0.1)
    err_d.backward()
    D.requires_grad_(False)
    with autocast():
        fake = G(z)
        err_g = generator_adversarial_loss(D(fake)) + F.mse_loss(fake.float(), real)
    err_g.backward()
    D.requires_grad_(True)


def probe(height: int = 72, width: int = 96, reps: int = 2) -> dict:
    """Seconds of one probe step (the best of `reps`, the variants interleaved so that a
    passing load hits them alike): fp32 in NCHW, bf16 in NCHW and bf16 in channels-last."""
    variants = {"fp32": ("none", "nchw"), "bf16_nchw": ("bf16", "nchw"),
                "bf16_channels_last": ("bf16", "channels_last")}
    runs = {}
    for name, (amp, layout) in variants.items():
        fmt = LAYOUTS[layout]
        D, G = (m.to(memory_format=fmt) for m in _probe_networks())
        gen = torch.Generator().manual_seed(0)
        real = to_layout(torch.randn(1, 3, height, width, generator=gen), fmt)
        z = to_layout(torch.randn(1, 3, height + 10, width + 10, generator=gen), fmt)
        step = (lambda D=D, G=G, real=real, z=z, amp=amp:
                _probe_step(D, G, real, z, autocast_context(torch.device("cpu"), amp)))
        step()   # oneDNN builds its kernels for these shapes
        runs[name] = step
    best = {name: float("inf") for name in runs}
    for _ in range(reps):
        for name, step in runs.items():
            start = time.perf_counter()
            step()
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: round(seconds, 5) for name, seconds in best.items()}


# ---- the cache ---------------------------------------------------------------------------------

def cache_file() -> Path:
    folder = os.environ.get("SINGAN_CACHE_DIR")
    if not folder:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        folder = Path(base) / "singan"
    return Path(folder) / CACHE_NAME


def machine_key() -> str:
    """What the probe's figures depend on: the CPU, its bf16 features, torch and its threads."""
    features = "+".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
                        if f in cpu_flags())
    return (f"{cpu_name()} [{features}] {os.cpu_count()} cores, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads")


def _read_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


_MEASURED = {}   # (cache file, machine key) -> figures, read or probed once per process


def measured(log=None) -> dict:
    """This machine's probe figures: from the cache, or probed now and cached (where the cache
    cannot be written, they are probed again next time)."""
    path, key = cache_file(), machine_key()
    if (path, key) in _MEASURED:
        return _MEASURED[path, key]
    entry = _read_cache(path).get(key)
    if isinstance(entry, dict) and all(isinstance(entry.get(k), (int, float)) and entry[k] > 0
                                       for k in ("fp32", "bf16_nchw", "bf16_channels_last")):
        _MEASURED[path, key] = entry
        return entry
    if log is not None:
        log("measuring how this CPU trains fastest (once, a few seconds)")
    entry = probe()
    data = _read_cache(path)
    data[key] = entry
    try:
        atomic_write_bytes(path, (json.dumps(data, indent=1) + "\n").encode())
    except SinGANError:
        pass
    _MEASURED[path, key] = entry
    return entry


# ---- the choices -------------------------------------------------------------------------------

def training_layout(device, amp: str, work: float = float("inf"),
                    log=None) -> torch.memory_format:
    """The memory layout of the training networks and their images: channels-last only for
    bf16 on a CPU with native bf16 where the probe measured it faster, NCHW otherwise (fp32
    always; bf16 trainings smaller than PROBE_WORK, without probing). SINGAN_LAYOUT (nchw or
    channels_last) overrides it."""
    forced = os.environ.get("SINGAN_LAYOUT")
    if forced:
        if forced not in LAYOUTS:
            raise SinGANError(f"SINGAN_LAYOUT={forced} is not a layout; use "
                              f"{' or '.join(LAYOUTS)} (or leave it unset)")
        return LAYOUTS[forced]
    if amp != "bf16" or not native_bf16(device) or work < PROBE_WORK:
        return torch.contiguous_format
    entry = measured(log)
    faster = entry["bf16_channels_last"] < CLEARLY_FASTER * entry["bf16_nchw"]
    return torch.channels_last if faster else torch.contiguous_format


def bf16_hint(device, amp: str, work: float, log=None) -> Optional[str]:
    """For an fp32 training on a CPU with native bf16, large enough to be worth it: how much
    faster --amp bf16 trains here (the probe's fp32 step against bf16's in its faster layout),
    or None (another device, bf16 already, no gain, or not judged as good)."""
    if amp != "none" or not native_bf16(device) or work < PROBE_WORK \
            or not BF16_SAMPLES_AS_GOOD:
        return None
    entry = measured(log)
    speedup = entry["fp32"] / min(entry["bf16_nchw"], entry["bf16_channels_last"])
    if speedup < 1.3:
        return None
    return (f"tip: --amp bf16 trains about {speedup:.1f}x faster on this CPU, with samples as "
            f"good (README: 'bf16 on a CPU'); this training runs in fp32, the default")

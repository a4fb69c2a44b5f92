"""Where training and drawing run: the device, mixed precision (autocast and loss scaling),
and the optimiser that suits the device. Used by SinGAN and ConSinGAN alike."""
import contextlib
from typing import Optional

import torch

from .errors import SinGANError

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name="auto") -> torch.device:
    """'auto' -> cuda if available, else mps, else cpu; an unavailable device is an error.
    A torch.device passes through."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SinGANError("--device cuda was asked for but CUDA is not available here; "
                          "use --device cpu (or auto)")
    if name == "mps" and not (getattr(torch.backends, "mps", None)
                              and torch.backends.mps.is_available()):
        raise SinGANError("--device mps was asked for but MPS is not available; use --device cpu")
    return torch.device(name)


def autocast_context(device: torch.device, amp: str, cache: bool = True):
    """A factory of autocast contexts for --amp none|bf16|fp16. cache=False: each region casts
    the weights afresh (what CUDA graph capture needs)."""
    if amp == "none":
        return contextlib.nullcontext
    if amp not in AMP_DTYPES:
        raise SinGANError(f"--amp {amp} is not supported; use --amp none, bf16 or fp16")
    dtype = AMP_DTYPES[amp]
    return lambda: torch.autocast(torch.device(device).type, dtype=dtype, cache_enabled=cache)


def _cpuinfo_field(name: str) -> str:
    """The first `name : value` line's value in /proc/cpuinfo ('' where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == name:
                    return value.strip()
    except OSError:
        pass
    return ""


def cpu_flags() -> frozenset:
    """The CPU's feature flags (avx2, avx512_bf16, amx_bf16, ...) from /proc/cpuinfo; empty
    where it cannot be read (not Linux)."""
    return frozenset(_cpuinfo_field("flags").split())


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo), else the platform's processor string."""
    import platform
    return _cpuinfo_field("model name") or platform.processor() or "unknown CPU"


def amp_slowdown(device: torch.device, amp: str) -> Optional[str]:
    """Why --amp would make this device slower rather than faster (None: no known reason).
    CPUs without native bfloat16/float16 convolutions (AVX-512 BF16/FP16 or AMX) emulate
    them: on an AVX2 CPU a bf16 or fp16 training step is about 25x slower than fp32."""
    if amp == "none" or torch.device(device).type != "cpu":
        return None
    try:
        native = (torch.ops.mkldnn._is_mkldnn_bf16_supported() if amp == "bf16"
                  else torch.ops.mkldnn._is_mkldnn_fp16_supported())
    except (AttributeError, RuntimeError):   # a torch without these queries: no warning
        return None
    if native:
        return None
    return (f"this CPU has no native {amp} convolutions (AVX-512 {amp.upper()} or AMX): "
            f"--amp {amp} runs emulated, many times slower than fp32 (about 25x on an AVX2 "
            f"CPU); leave --amp out here")


def grad_scaler(device: torch.device, amp: str) -> torch.amp.GradScaler:
    """Loss scaling for --amp fp16 (float16 gradients underflow without it); a pass-through
    scaler otherwise. Each overflow skips one update and halves the scale, and every scale
    starts a new scaler: starting at 2**10 rather than torch's 2**16 skips fewer of a
    scale's first updates (the critic's weight gradients are sums over every pixel). With
    the fused Adam the scaler needs no host synchronisation."""
    return torch.amp.GradScaler(torch.device(device).type, init_scale=2.0 ** 10,
                                enabled=amp == "fp16")


def adam(params, lr: float, beta1: float, device: torch.device) -> torch.optim.Adam:
    """The reference's Adam (betas (beta1, 0.999)), with torch's fused kernel on the CPU and
    CUDA: the same update, one kernel per parameter instead of about ten (it agrees with the
    per-op loop to float32 rounding, 1e-7 after 250 steps; 4.5% of an iteration at scale 0)."""
    fused = True if torch.device(device).type in ("cpu", "cuda") else None
    return torch.optim.Adam(params, lr=lr, betas=(beta1, 0.999), fused=fused)

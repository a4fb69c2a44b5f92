"""Seconds per training iteration per scale, FLOP rate and memory, for SinGAN or ConSinGAN.

    python benchmarks/bench_train.py                       # every scale of Input/Images/rocket.png
    python benchmarks/bench_train.py --size 188x250 --scales 8,9 --iters 5 --amp bf16
    python benchmarks/bench_train.py --model consingan --json out.json
    python benchmarks/bench_train.py --size 768x1024 --max_size 1024 --scales last --iters 1 \
        --warmup 0 --no_flops --low_memory            # peak memory of the lean step

For SinGAN each scale runs the real training step (singan.train.ScaleTrainer.step) with the
coarser scales' generators frozen at random weights (the cost of a step does not depend on
the weights): a warm-up, then --iters timed iterations. The FLOPs of one iteration are
counted by torch's FlopCounterMode (convolutions: forward, backward and the gradient
penalty's double backward) and compared with the machine's own rate for one large 128-channel
3x3 convolution forward pass, measured here (best of several).

Each scale is measured in a fresh process, so that its peak memory (the CUDA allocator's
peak, or on the CPU the process's peak resident size, VmHWM; in MiB) is that scale's alone;
the estimate beside it (MiB) is singan.resources' figure for the same step, plain or
--low_memory, with the process's own PROCESS_BYTES.
"""
import argparse
import multiprocessing

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from common import (DEFAULT_IMAGE, REFERENCE_S_PER_ITER, describe_machine, load_image,
                    median_time, peak_memory_mb, plan_and_reals, random_pyramid, sync,
                    write_json)
from singan.hparams import SinGANConfig
from singan.models import Discriminator, Generator, channels_at_scale, init_weights
from singan.devices import autocast_context
from singan.resources import PROCESS_BYTES, training_step_bytes
from singan.train import ScaleTrainer


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


def measure_scale(image, n, iters, warmup, device, amp, niter, legacy, max_size,
                  low_memory, flops, threads):
    """One scale's row, measured in this (fresh) process."""
    if threads:
        torch.set_num_threads(threads)
    plan, reals = plan_and_reals(image, max_size=max_size)
    reals = [r.to(device) for r in reals]
    cfg = SinGANConfig(amp=amp, legacy_g_steps=legacy)
    pyramid = random_pyramid(reals, plan.scale_factor, n, device)
    nfc, min_nfc = channels_at_scale(n)
    G, D = Generator(nfc, min_nfc).to(device), Discriminator(nfc, min_nfc).to(device)
    init_weights(G), init_weights(D)
    trainer = ScaleTrainer(n, pyramid, G, D, cfg, torch.Generator(device).manual_seed(0),
                           low_memory=low_memory)
    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for it in range(warmup):
        trainer.step(it)
    counted = conv_flops(lambda: trainer.step(warmup)) if flops else 0.0
    seconds = median_time(lambda: trainer.step(warmup + 1), iters, device)
    h, w = plan.shapes[n]
    estimate = PROCESS_BYTES + training_step_bytes(h, w, nfc, min_nfc, batched=trainer.batched,
                                                   low_memory=low_memory)
    return {"scale": n, "height": h, "width": w, "nfc": nfc, "low_memory": low_memory,
            "median_s_per_iter": seconds, "projected_s": seconds * niter,
            "conv_gflop_per_iter": counted / 1e9, "gflops": counted / seconds / 1e9,
            "peak_memory_mb": peak_memory_mb(device), "estimate_mb": estimate / 2 ** 20}


def bench_singan(image, scales, iters, warmup, device, amp, niter=2000, legacy=False,
                 on_row=lambda row: None, max_size=250, low_memory=False, flops=True,
                 threads=None):
    plan = plan_and_reals(image, max_size=max_size)[0]
    scales = [plan.stop_scale if s == "last" else int(s) for s in scales] if scales else None
    rows = []
    context = multiprocessing.get_context("spawn")
    for n in scales if scales else range(plan.n_scales):
        with context.Pool(1) as pool:   # a fresh process per scale: its own peak memory
            rows.append(pool.apply(measure_scale, (image.cpu(), n, iters, warmup, device, amp,
                                                   niter, legacy, max_size, low_memory, flops,
                                                   threads or torch.get_num_threads())))
        on_row(rows[-1])
    return rows


def print_header():
    print("ref: the reference's s/iter on the issue's AVX-512 machine (at 188x250 only); "
          "% train: of this machine's forward+backward conv rate")
    print(f"{'scale':>5} {'size':>9} {'nfc':>4} {'s/iter':>8} {'ref':>7} {'speedup':>7} "
          f"{'2000 it':>8} {'GFLOP/it':>9} {'GFLOP/s':>8} {'% train':>7} {'peak MB':>8} "
          f"{'est. MB':>8}")


def print_row(r, reference_size: bool, train_rate: float):
    ref = REFERENCE_S_PER_ITER.get(r["scale"]) if reference_size else None
    ref_text = f"{ref:7.3f}" if ref else f"{'-':>7}"
    speed = f"{ref / r['median_s_per_iter']:6.2f}x" if ref else f"{'-':>7}"
    print(f"{r['scale']:>5} {r['height']:>4}x{r['width']:<4} {r['nfc']:>4} "
          f"{r['median_s_per_iter']:8.3f} {ref_text} {speed} {r['projected_s'] / 60:7.1f}m "
          f"{r.get('conv_gflop_per_iter', 0):9.1f} {r.get('gflops', 0):8.1f} "
          f"{100 * r.get('gflops', 0) / train_rate:6.0f}% {r['peak_memory_mb']:8.0f} "
          f"{r.get('estimate_mb', 0):8.0f}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="singan", choices=["singan", "consingan"])
    parser.add_argument("--image", default=str(DEFAULT_IMAGE), help="image to build the pyramid")
    parser.add_argument("--size", default=None,
                        help="resize the image to HxW first (188x250: the reference table's size)")
    parser.add_argument("--scales", default=None,
                        help="comma-separated scales, or 'last' for the finest (default: all)")
    parser.add_argument("--max_size", type=int, default=250,
                        help="longer side of the finest scale (the image is not enlarged: give "
                             "--size too, e.g. --size 768x1024 --max_size 1024)")
    parser.add_argument("--iters", type=int, default=5, help="timed iterations per scale")
    parser.add_argument("--warmup", type=int, default=2, help="untimed iterations first")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--amp", default="none", choices=["none", "bf16", "fp16"])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--legacy_g_steps", action="store_true",
                        help="time the reference's step structure instead (one image per pass, "
                             "the G steps reusing the last D step's graph): the reference's cost "
                             "on this machine")
    parser.add_argument("--low_memory", action="store_true",
                        help="measure the lean training step (singan.train.ScaleTrainer's "
                             "low_memory: the same numbers, fewer activations alive)")
    parser.add_argument("--no_flops", action="store_true",
                        help="skip counting FLOPs and measuring the machine's conv rate (one "
                             "step less: for memory measurements of large images)")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    scales = args.scales.split(",") if args.scales else None
    image = load_image(args.image, args.size, args.device)
    reference_size = tuple(image.shape[2:]) == (188, 250)
    print(describe_machine())
    if args.no_flops:
        peak = peak_train = float("nan")
    else:
        peak = conv_peak_gflops(args.device, args.amp)
        peak_train = conv_peak_gflops(args.device, args.amp, backward=True)
    print(f"image {image.shape[2]}x{image.shape[3]}, model {args.model}, amp {args.amp}; "
          f"machine conv rate (128 ch 3x3, best of NCHW/channels-last): forward {peak:.0f} "
          f"GFLOP/s, forward+backward {peak_train:.0f} GFLOP/s")
    if args.model == "consingan":
        from bench_consingan import bench_stages
        print(f"{'stage':>5} {'size':>9} {'nfc':>4} {'s/iter':>8} {'2000 it':>8}")
        rows = []
        stages = [int(x) for x in scales] if scales else None   # ('last': SinGAN only)
        for r in bench_stages(image, stages=stages, iters=args.iters, warmup=args.warmup,
                              device=args.device):
            rows.append({"scale": r["stage"], "height": r["height"], "width": r["width"],
                         "nfc": r["channels"], "median_s_per_iter": r["s_per_iter"],
                         "projected_s": r["projected_s"], "trained_bodies": r["trained_bodies"]})
            print(f"{r['stage']:>5} {r['height']:>4}x{r['width']:<4} {r['channels']:>4} "
                  f"{r['s_per_iter']:8.3f} {r['projected_s'] / 60:7.1f}m", flush=True)
    else:
        print_header()
        rows = bench_singan(image, scales, args.iters, args.warmup, args.device, args.amp,
                            legacy=args.legacy_g_steps, max_size=args.max_size,
                            on_row=lambda r: print_row(r, reference_size, peak_train),
                            low_memory=args.low_memory, flops=not args.no_flops,
                            threads=args.threads)
    for r in rows:
        if "gflops" in r:
            r["percent_of_machine_conv_rate"] = 100 * r["gflops"] / peak
            r["percent_of_machine_train_rate"] = 100 * r["gflops"] / peak_train
    total = sum(r.get("projected_s", 0) for r in rows)
    print(f"projected full training ({len(rows)} scales, 2000 iterations each): "
          f"{total / 3600:.2f} h; machine conv rate {peak:.0f} GFLOP/s forward, "
          f"{peak_train:.0f} forward+backward")
    write_json(args.json, rows)


if __name__ == "__main__":
    main()

"""Seconds per ConSinGAN training iteration, per stage, on a real image's pyramid.

    python benchmarks/bench_consingan.py [--image Input/Images/rocket.png] [--stages 4,5]
        [--iters 5] [--device auto] [--train_mode generation] [--threads N]
    python benchmarks/bench_consingan.py --amp none,bf16       # fp32, then bf16

For each stage k it builds the generator with k + 1 bodies (untrained: the cost of an
iteration does not depend on the weights), the stage's critic and optimizers exactly as
training does (singan.methods.consingan.train.make_stage), runs warm-up iterations, then times
`iters` iterations of train_iteration and prints the median and the projected time of the
stage's niter iterations (2000 by default), the convolutions' FLOPs of one iteration and
their rate against the machine's own forward+backward rate for one large 3x3 convolution
(measured here, in the same precision). --layout as bench_train.py's.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import (conv_flops, conv_peak_gflops, describe_machine, layout_for,  # noqa: E402
                    layout_name)
from singan.methods.consingan.hparams import TRAIN_MODES, ConSinGANConfig  # noqa: E402
from singan.methods.consingan.models import build_discriminator, build_generator  # noqa: E402
from singan.methods.consingan.pyramid import build_stage_reals  # noqa: E402
from singan.methods.consingan.train import (fixed_noise_for_stage, make_stage,  # noqa: E402
                                            plan_for, train_iteration)
from singan.image_io import read_image  # noqa: E402
from singan.layers import init_weights  # noqa: E402
from singan.devices import resolve_device  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def bench_stages(image, cfg: ConSinGANConfig = ConSinGANConfig(), stages=None,
                 iters: int = 5, warmup: int = 1, device="cpu", seed: int = 0,
                 amp: str = None, layout: str = "auto", flops: bool = False) -> list:
    """Time train_iteration at each stage of the pyramid of `image` (a path, or a [1, 3, H, W]
    tensor in [-1, 1]); one dict per stage: stage, height, width, channels, trained_bodies,
    layout, s_per_iter (median), projected_s (s_per_iter * cfg.niter), and with flops the
    convolutions' GFLOP of one iteration and their rate (conv_gflop_per_iter, gflops)."""
    device = resolve_device(device) if isinstance(device, str) else device
    if amp is not None:
        cfg = ConSinGANConfig(**{**cfg.__dict__, "amp": amp})
    torch.manual_seed(seed)
    image = image.to(device) if isinstance(image, torch.Tensor) else read_image(image, device)
    plan = plan_for(image.shape[2], image.shape[3], cfg)
    reals = build_stage_reals(image, plan)
    stages = range(plan.n_stages) if stages is None else stages
    gen = torch.Generator(device=device).manual_seed(seed)
    memory_format = layout_for(layout, device, cfg.amp)
    results = []
    for k in stages:
        G = build_generator(cfg, k + 1)
        D = build_discriminator(cfg)
        init_weights(G), init_weights(D)
        G.to(device), D.to(device)
        fixed = [fixed_noise_for_stage(j, G, reals, cfg, gen) for j in range(k)]
        amps = [1.0] + [0.05] * (k - 1) if k else []
        state = make_stage(k, G, D, reals, fixed, amps, cfg, gen,
                           torch.Generator().manual_seed(seed), layout=memory_format)
        for _ in range(warmup):
            train_iteration(state)
        counted = conv_flops(lambda: train_iteration(state)) if flops else 0.0
        _sync(device)
        times = []
        for _ in range(iters):
            start = time.perf_counter()
            train_iteration(state)
            _sync(device)
            times.append(time.perf_counter() - start)
        s = statistics.median(times)
        h, w = plan.shapes[k]
        results.append({"stage": k, "height": h, "width": w, "channels": cfg.nfc,
                        "trained_bodies": min(k + 1, cfg.train_depth),
                        "layout": layout_name(memory_format), "s_per_iter": s,
                        "projected_s": s * cfg.niter, "conv_gflop_per_iter": counted / 1e9,
                        "gflops": counted / s / 1e9})
    return results


def print_stage_header(niter: int) -> None:
    print(f"{'stage':>5} {'size':>10} {'ch':>4} {'bodies':>6} {'s/iter':>8} "
          f"{'projected (niter ' + str(niter) + ')':>24} {'GFLOP/it':>9} {'GFLOP/s':>8} "
          f"{'% train':>7}")


def print_stage_row(r: dict, train_rate: float) -> None:
    share = 100 * r["gflops"] / train_rate if train_rate == train_rate else float("nan")
    print(f"{r['stage']:>5} {r['height']:>4} x {r['width']:<4} {r['channels']:>4} "
          f"{r['trained_bodies']:>6} {r['s_per_iter']:>8.3f} "
          f"{r['projected_s'] / 60:>20.1f} min {r['conv_gflop_per_iter']:9.1f} "
          f"{r['gflops']:8.1f} {share:6.0f}%", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", default="Input/Images/rocket.png")
    parser.add_argument("--stages", default=None, help="comma-separated stages (default: all)")
    parser.add_argument("--iters", type=int, default=5, help="timed iterations per stage")
    parser.add_argument("--warmup", type=int, default=1, help="untimed iterations per stage")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--train_mode", default="generation", choices=TRAIN_MODES)
    parser.add_argument("--train_stages", type=int, default=6)
    parser.add_argument("--max_size", type=int, default=250)
    parser.add_argument("--niter", type=int, default=2000, help="iterations per stage to project")
    parser.add_argument("--amp", default="none",
                        help="none, bf16 or fp16, or several back to back (none,bf16)")
    parser.add_argument("--layout", default="auto", choices=["auto", "nchw", "channels_last"],
                        help="the training networks' memory layout (auto: the library's choice)")
    parser.add_argument("--no_flops", action="store_true",
                        help="skip counting FLOPs and measuring the machine's conv rate")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    amps = [a.strip() for a in args.amp.split(",") if a.strip()]
    if not amps or any(a not in ("none", "bf16", "fp16") for a in amps):
        parser.error(f"--amp {args.amp}: give none, bf16 or fp16, or a comma-separated list")
    stages = [int(s) for s in args.stages.split(",")] if args.stages else None
    device = resolve_device(args.device)
    print(describe_machine())
    totals = {}
    for amp in amps:
        cfg = ConSinGANConfig(train_mode=args.train_mode, train_stages=args.train_stages,
                              max_size=args.max_size, niter=args.niter, amp=amp)
        rate = (float("nan") if args.no_flops else
                conv_peak_gflops(device, amp, backward=True))
        print(f"ConSinGAN {args.train_mode}, {args.image}, device {device}, amp {amp}, layout "
              f"{layout_name(layout_for(args.layout, device, amp))}; machine forward+backward "
              f"conv rate (128 ch 3x3) {rate:.0f} GFLOP/s")
        print_stage_header(cfg.niter)
        total, rows = 0.0, []
        for r in bench_stages(args.image, cfg, stages, args.iters, args.warmup, device,
                              layout=args.layout, flops=not args.no_flops):
            total += r["projected_s"]
            rows.append(r)
            print_stage_row(r, rate)
        totals[amp] = rows
        print(f"projected training time of the stages timed: {total / 3600:.2f} h in {amp}")
    for amp in amps[1:]:
        base = {r["stage"]: r["s_per_iter"] for r in totals[amps[0]]}
        cells = [f"{r['stage']}: {base[r['stage']] / r['s_per_iter']:.2f}x" for r in totals[amp]]
        whole = (sum(r["projected_s"] for r in totals[amps[0]])
                 / sum(r["projected_s"] for r in totals[amp]))
        print(f"{amp} against {amps[0]}, per iteration: {', '.join(cells)}; the whole projected "
              f"training: {whole:.2f}x")


if __name__ == "__main__":
    main()

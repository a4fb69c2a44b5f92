"""Seconds per training iteration per scale, FLOP rate and memory, for SinGAN or ConSinGAN.

    python benchmarks/bench_train.py                       # every scale of Input/Images/rocket.png
    python benchmarks/bench_train.py --size 188x250 --scales 8,9 --iters 5 --amp bf16
    python benchmarks/bench_train.py --size 188x250 --amp none,bf16   # fp32, then bf16
    python benchmarks/bench_train.py --model consingan --json out.json
    python benchmarks/bench_train.py --size 768x1024 --max_size 1024 --scales last --iters 1 \
        --warmup 0 --no_flops --low_memory            # peak memory of the lean step

For SinGAN each scale runs the real training step (methods/singan/train.py's ScaleTrainer.step) with the
coarser scales' generators frozen at random weights (the cost of a step does not depend on
the weights): a warm-up, then --iters timed iterations. The FLOPs of one iteration are
counted by torch's FlopCounterMode (convolutions: forward, backward and the gradient
penalty's double backward) and compared with the machine's own rate for one large 128-channel
3x3 convolution forward pass, measured here (best of several).

--amp none,bf16 measures fp32 and bf16 back to back and prints bf16's speed-up per scale;
--layout (auto: the library's choice, singan.tuning, which probes the CPU once) times the
step in NCHW or channels-last.

Each scale is measured in a fresh process, so that its peak memory (the CUDA allocator's
peak, or on the CPU the process's peak resident size, VmHWM; in MiB) is that scale's alone;
the estimate beside it (MiB) is singan.resources' figure for the same step, plain or
--low_memory, with the process's own PROCESS_BYTES.
"""
import argparse
import multiprocessing

import torch

from common import (DEFAULT_IMAGE, REFERENCE_S_PER_ITER, conv_flops, conv_peak_gflops,
                    describe_machine, layout_for, layout_name, load_image, median_time,
                    peak_memory_mb, plan_and_reals, random_pyramid, write_json)
from singan.methods.singan.hparams import SinGANConfig
from singan.methods.singan.models import Discriminator, Generator, channels_at_scale, init_weights
from singan.resources import PROCESS_BYTES, training_step_bytes
from singan.methods.singan.train import ScaleTrainer


def measure_scale(image, n, opts):
    """One scale's row, measured in this (fresh) process; opts: the bench's options (amp,
    layout, iters, warmup, device, niter, legacy_g_steps, max_size, low_memory, flops,
    threads)."""
    torch.set_num_threads(opts.threads)
    device = opts.device
    plan, reals = plan_and_reals(image, max_size=opts.max_size)
    reals = [r.to(device) for r in reals]
    cfg = SinGANConfig(amp=opts.amp, legacy_g_steps=opts.legacy_g_steps)
    pyramid = random_pyramid(reals, plan.scale_factor, n, device)
    nfc, min_nfc = channels_at_scale(n)
    G, D = Generator(nfc, min_nfc).to(device), Discriminator(nfc, min_nfc).to(device)
    init_weights(G), init_weights(D)
    layout = layout_for(opts.layout, device, opts.amp)
    trainer = ScaleTrainer(n, pyramid, G, D, cfg, torch.Generator(device).manual_seed(0),
                           low_memory=opts.low_memory, layout=layout)
    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for it in range(opts.warmup):
        trainer.step(it)
    counted = conv_flops(lambda: trainer.step(opts.warmup)) if opts.flops else 0.0
    seconds = median_time(lambda: trainer.step(opts.warmup + 1), opts.iters, device)
    h, w = plan.shapes[n]
    estimate = PROCESS_BYTES + training_step_bytes(h, w, nfc, min_nfc, batched=trainer.batched,
                                                   low_memory=opts.low_memory)
    return {"scale": n, "height": h, "width": w, "nfc": nfc, "amp": opts.amp,
            "layout": layout_name(layout), "low_memory": opts.low_memory,
            "median_s_per_iter": seconds, "projected_s": seconds * opts.niter,
            "conv_gflop_per_iter": counted / 1e9, "gflops": counted / seconds / 1e9,
            "peak_memory_mb": peak_memory_mb(device), "estimate_mb": estimate / 2 ** 20}


def bench_singan(image, scales, opts, on_row=lambda row: None):
    plan = plan_and_reals(image, max_size=opts.max_size)[0]
    scales = [plan.stop_scale if s == "last" else int(s) for s in scales] if scales else None
    rows = []
    context = multiprocessing.get_context("spawn")
    for n in scales if scales else range(plan.n_scales):
        with context.Pool(1) as pool:   # a fresh process per scale: its own peak memory
            rows.append(pool.apply(measure_scale, (image.cpu(), n, opts)))
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


def bench_one_precision(image, scales, opts, reference_size):
    """The machine's conv rates and the per-scale rows for opts.amp; returns (rows, forward
    rate, forward+backward rate)."""
    if opts.flops:
        peak = conv_peak_gflops(opts.device, opts.amp)
        peak_train = conv_peak_gflops(opts.device, opts.amp, backward=True)
    else:
        peak = peak_train = float("nan")
    layout = layout_name(layout_for(opts.layout, opts.device, opts.amp))
    print(f"image {image.shape[2]}x{image.shape[3]}, model {opts.model}, amp {opts.amp}, "
          f"layout {layout}; machine conv rate (128 ch 3x3, best of NCHW/channels-last): "
          f"forward {peak:.0f} GFLOP/s, forward+backward {peak_train:.0f} GFLOP/s")
    if opts.model == "consingan":
        from bench_consingan import bench_stages, print_stage_header, print_stage_row
        print_stage_header(opts.niter)
        stages = [int(x) for x in scales] if scales else None   # ('last': SinGAN only)
        rows = []
        for r in bench_stages(image, stages=stages, iters=opts.iters, warmup=opts.warmup,
                              device=opts.device, amp=opts.amp, layout=opts.layout,
                              flops=opts.flops):
            print_stage_row(r, peak_train)
            rows.append({"scale": r["stage"], "height": r["height"], "width": r["width"],
                         "nfc": r["channels"], "amp": opts.amp, "layout": r["layout"],
                         "median_s_per_iter": r["s_per_iter"],
                         "projected_s": r["projected_s"], "trained_bodies": r["trained_bodies"],
                         "conv_gflop_per_iter": r["conv_gflop_per_iter"],
                         "gflops": r["gflops"]})
    else:
        print_header()
        rows = bench_singan(image, scales, opts,
                            on_row=lambda r: print_row(r, reference_size, peak_train))
    for r in rows:
        if r.get("gflops"):
            r["percent_of_machine_conv_rate"] = 100 * r["gflops"] / peak
            r["percent_of_machine_train_rate"] = 100 * r["gflops"] / peak_train
    total = sum(r.get("projected_s", 0) for r in rows)
    print(f"projected full training ({len(rows)} {'stages' if opts.model == 'consingan' else 'scales'}, "
          f"{opts.niter} iterations each): {total / 3600:.2f} h in {opts.amp}; machine conv "
          f"rate {peak:.0f} GFLOP/s forward, {peak_train:.0f} forward+backward")
    return rows


def print_speedups(tables: dict) -> None:
    """Each precision's s/iter against the first's, scale by scale, and the projections'."""
    names = list(tables)
    base = {r["scale"]: r for r in tables[names[0]]}
    for amp in names[1:]:
        cells = [f"{r['scale']}: {base[r['scale']]['median_s_per_iter'] / r['median_s_per_iter']:.2f}x"
                 for r in tables[amp] if r["scale"] in base]
        total = (sum(r["projected_s"] for r in tables[names[0]])
                 / sum(r["projected_s"] for r in tables[amp]))
        print(f"{amp} against {names[0]}, per iteration: {', '.join(cells)}; the whole "
              f"projected training: {total:.2f}x")


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
    parser.add_argument("--niter", type=int, default=2000, help="iterations per scale to project")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--amp", default="none",
                        help="none, bf16 or fp16, or several back to back (none,bf16)")
    parser.add_argument("--layout", default="auto", choices=["auto", "nchw", "channels_last"],
                        help="the training networks' memory layout (auto: the library's choice)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--legacy_g_steps", action="store_true",
                        help="time the reference's step structure instead (one image per pass, "
                             "the G steps reusing the last D step's graph): the reference's cost "
                             "on this machine")
    parser.add_argument("--low_memory", action="store_true",
                        help="measure the lean training step (methods/singan/train.py's ScaleTrainer's "
                             "low_memory: the same numbers, fewer activations alive)")
    parser.add_argument("--no_flops", action="store_true",
                        help="skip counting FLOPs and measuring the machine's conv rate (one "
                             "step less: for memory measurements of large images)")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    amps = [a.strip() for a in args.amp.split(",") if a.strip()]
    if not amps or any(a not in ("none", "bf16", "fp16") for a in amps):
        parser.error(f"--amp {args.amp}: give none, bf16 or fp16, or a comma-separated list")
    if args.threads:
        torch.set_num_threads(args.threads)
    args.threads = torch.get_num_threads()
    args.flops = not args.no_flops
    scales = args.scales.split(",") if args.scales else None
    image = load_image(args.image, args.size, args.device)
    reference_size = tuple(image.shape[2:]) == (188, 250)
    print(describe_machine())
    tables = {}
    for amp in amps:
        tables[amp] = bench_one_precision(image, scales, argparse.Namespace(**{**vars(args),
                                                                              "amp": amp}),
                                          reference_size)
    if len(amps) > 1:
        print_speedups(tables)
    write_json(args.json, tables if len(amps) > 1 else tables[amps[0]])


if __name__ == "__main__":
    main()

"""SinGAN's training step replayed from CUDA graphs against the eager step: equal, and faster?

    python benchmarks/bench_cuda_graphs.py --size 188x250 --amp none,bf16 --json out.json

For every scale of the image's pyramid (the coarser generators frozen at random weights, as
in bench_train.py), two checks of singan.methods.singan.train.ScaleTrainer(cuda_graphs=True):

  equal   the same seed and weights trained --check_iters iterations eagerly and graphed
          (WARMUP eager iterations, then replays), with cuDNN deterministic and TF32 off:
          the largest |difference| of G's and D's weights and of the losses. The two runs
          launch the same kernels on the same noise, so it should be 0 or float rounding.
  timed   seconds per iteration over --iters iterations after the warm-up and the capture,
          one synchronisation at the end (as a training runs), with torch's default TF32
          setting for cuDNN convolutions (said in the output).

It prints a row per scale and amp, the projected 2000-iteration training of every scale both
ways, and writes the rows to --json. Needs a CUDA device (else one line and exit 2).
"""
import argparse
import copy
import gc
import sys
import time

import torch

from common import (DEFAULT_IMAGE, describe_machine, load_image, plan_and_reals, random_pyramid,
                    write_json)
from singan.devices import autocast_context
from singan.methods.singan.hparams import SinGANConfig
from singan.methods.singan.models import Discriminator, Generator, channels_at_scale, init_weights
from singan.methods.singan.train import ScaleTrainer

TOLERANCE = 1e-5     # "equal": every weight and loss within this of the eager run's
NITER = 2000


def networks(n, seed=1):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        G, D = Generator(*channels_at_scale(n)), Discriminator(*channels_at_scale(n))
        init_weights(G), init_weights(D)
    return G, D


def trainer_for(n, pyramid, nets, amp, graphs, device, same_autocast=False):
    """same_autocast: the eager trainer casts weights afresh in every autocast region, as the
    graphed one must (with the cache a weight used twice in a region is cast once, so its two
    gradients are summed in bf16 rather than float32: other numbers, not a wrong graph)."""
    G, D = (copy.deepcopy(m).to(device) for m in nets)
    trainer = ScaleTrainer(n, pyramid, G, D, SinGANConfig(amp=amp),
                           torch.Generator(device).manual_seed(0), cuda_graphs=graphs)
    if same_autocast and not graphs:
        trainer.autocast = autocast_context(device, amp, cache=False)
    return trainer


def max_diff(a, b) -> float:
    return max(((x.float() - y.float()).abs().max().item()
                for x, y in zip(a.state_dict().values(), b.state_dict().values())
                if x.is_floating_point()), default=0.0)


def check_equal(n, pyramid, nets, amp, iters, device) -> dict:
    saved = (torch.backends.cudnn.deterministic, torch.backends.cudnn.allow_tf32,
             torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        runs = []
        for graphs in (False, True):
            trainer = trainer_for(n, pyramid, nets, amp, graphs, device, same_autocast=True)
            for it in range(iters):
                trainer.step(it)
            torch.cuda.synchronize()
            runs.append(trainer)
        eager, graphed = runs
        losses = max((torch.stack(eager.history[k]) - torch.stack(graphed.history[k])).abs()
                     .max().item() for k in eager.history)
        row = {"max_diff_G": max_diff(eager.G, graphed.G),
               "max_diff_D": max_diff(eager.D, graphed.D),
               "max_diff_losses": losses, "captures": graphed.graphs.captures,
               "moved_G": max_diff(eager.G, nets[0].to(device))}
        row["equal"] = (row["captures"] == 1 and max(row["max_diff_G"], row["max_diff_D"],
                                                     row["max_diff_losses"]) <= TOLERANCE)
        return row
    finally:
        (torch.backends.cudnn.deterministic, torch.backends.cudnn.allow_tf32,
         torch.backends.cuda.matmul.allow_tf32) = saved


def seconds_per_iter(n, pyramid, nets, amp, graphs, iters, device) -> float:
    trainer = trainer_for(n, pyramid, nets, amp, graphs, device)
    warm = 4     # WARMUP eager iterations and the capture's first replay
    for it in range(warm):
        trainer.step(it)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for it in range(warm, warm + iters):
        trainer.step(it)
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / iters


def free():
    gc.collect()
    torch.cuda.empty_cache()


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", default=str(DEFAULT_IMAGE))
    parser.add_argument("--size", default="188x250", help="resize the image to HxW first")
    parser.add_argument("--max_size", type=int, default=250)
    parser.add_argument("--scales", default=None, help="comma-separated scales (default: all)")
    parser.add_argument("--amp", default="none", help="comma-separated: none, bf16")
    parser.add_argument("--iters", type=int, default=10, help="timed iterations per scale")
    parser.add_argument("--check_iters", type=int, default=6,
                        help="iterations of the equality check (the first 3 are eager)")
    parser.add_argument("--cudnn_benchmark", action="store_true",
                        help="let cuDNN time its algorithms for each shape first "
                             "(torch.backends.cudnn.benchmark; singan leaves it off)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("error: CUDA graphs need a CUDA device, and torch sees none here", file=sys.stderr)
        return 2
    device = "cuda"
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    print(describe_machine())
    print(f"torch {torch.__version__}; timings with cudnn.allow_tf32="
          f"{torch.backends.cudnn.allow_tf32} (torch's default), cudnn.benchmark="
          f"{torch.backends.cudnn.benchmark}; the check with TF32 off and cuDNN deterministic, "
          f"the eager run's autocast without its weight cache (as the graphed one)")
    image = load_image(args.image, args.size, device)
    plan, reals = plan_and_reals(image, max_size=args.max_size)
    reals = [r.to(device) for r in reals]
    scales = [int(s) for s in args.scales.split(",")] if args.scales else range(plan.n_scales)
    print(f"{'amp':>4} {'scale':>5} {'size':>9} {'nfc':>4} {'eager s/it':>10} {'graph s/it':>10} "
          f"{'speedup':>7} {'max|dG|':>9} {'max|dD|':>9} {'max|dloss|':>10} {'equal':>5}")
    rows = []
    for amp in args.amp.split(","):
        for n in scales:
            h, w = plan.shapes[n]
            row = {"amp": amp, "scale": n, "height": h, "width": w,
                   "nfc": channels_at_scale(n)[0]}
            try:
                pyramid = random_pyramid(reals, plan.scale_factor, n, device)
                nets = networks(n)
                row.update(check_equal(n, pyramid, nets, amp, args.check_iters, device))
                free()
                row["eager_s"] = seconds_per_iter(n, pyramid, nets, amp, False, args.iters, device)
                free()
                row["graph_s"] = seconds_per_iter(n, pyramid, nets, amp, True, args.iters, device)
                row["speedup"] = row["eager_s"] / row["graph_s"]
            except Exception as error:   # noqa: BLE001: the report says what failed, and goes on
                row["error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
            free()
            rows.append(row)
            if "error" in row:
                print(f"{amp:>4} {n:>5} {h:>4}x{w:<4} {row['nfc']:>4} failed: {row['error']}",
                      flush=True)
                continue
            print(f"{amp:>4} {n:>5} {h:>4}x{w:<4} {row['nfc']:>4} {row['eager_s']:10.4f} "
                  f"{row['graph_s']:10.4f} {row['speedup']:6.2f}x {row['max_diff_G']:9.2e} "
                  f"{row['max_diff_D']:9.2e} {row['max_diff_losses']:10.2e} "
                  f"{'yes' if row['equal'] else 'NO':>5}", flush=True)
        done = [r for r in rows if r["amp"] == amp and "error" not in r]
        if done:
            eager = sum(r["eager_s"] for r in done) * NITER
            graph = sum(r["graph_s"] for r in done) * NITER
            print(f"amp {amp}: projected {NITER}-iteration training of {len(done)} scales: eager "
                  f"{eager / 60:.1f} min, graphed {graph / 60:.1f} min "
                  f"({eager / graph:.2f}x); equal at every scale: "
                  f"{all(r['equal'] for r in done) and len(done) == len(scales)}", flush=True)
    write_json(args.json, rows)
    return 0 if rows and all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

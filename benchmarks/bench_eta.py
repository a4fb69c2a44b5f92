"""How true the progress is: the work fraction and the time-left estimate of a real training.

    python benchmarks/bench_eta.py                                   # rocket, 96 px, 150 it
    python benchmarks/bench_eta.py --model consingan --max_size 96 --niter 150

Trains one image through singan.train_model (a fresh model folder under TrainedModels/
bench_eta/), records every ProgressEvent (seconds since the start, the share of the work
done, the estimated seconds left), and afterwards compares each estimate with the time that
was really left. It prints the estimate when the work passes 25% and 50% (the issue's
criterion: within 25% of the truth), and the first estimate of every stage.
"""
import argparse
import shutil
import sys
import time

import torch

from common import DEFAULT_IMAGE, ROOT, describe_machine
from singan import ConSinGANConfig, SinGANConfig, train_model

CHECKS = (0.25, 0.50)
TOLERANCE = 0.25


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", default=str(DEFAULT_IMAGE))
    parser.add_argument("--model", default="singan", choices=["singan", "consingan"])
    parser.add_argument("--max_size", type=int, default=96)
    parser.add_argument("--niter", type=int, default=150)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(describe_machine())
    config = (SinGANConfig if args.model == "singan" else ConSinGANConfig)(
        max_size=args.max_size, niter=args.niter)
    folder = ROOT / "TrainedModels" / "bench_eta" / args.model
    shutil.rmtree(folder, ignore_errors=True)
    events = []
    start = time.perf_counter()
    train_model(args.image, config, folder, device="cpu", seed=0, show_progress=False,
                progress=lambda e: events.append((time.perf_counter() - start, e)),
                log=lambda line: print(f"{time.perf_counter() - start:7.1f} s  {line}"))
    total = time.perf_counter() - start
    print(f"{args.model}, --max_size {args.max_size}, --niter {args.niter}: {total:.1f} s")
    print(f"{'at':>8} {'stage':>5} {'iter':>5} {'work':>6} {'estimated left':>15} "
          f"{'really left':>12} {'error':>7}")

    def row(t, e, mark=""):
        really = total - t
        if e.seconds_left is None:
            print(f"{t:7.1f}s {e.stage:>5} {e.iteration:>5} {100 * e.fraction:5.1f}% "
                  f"{'-':>15} {really:11.1f}s {'-':>7} {mark}")
            return None
        error = (e.seconds_left - really) / really
        print(f"{t:7.1f}s {e.stage:>5} {e.iteration:>5} {100 * e.fraction:5.1f}% "
              f"{e.seconds_left:14.1f}s {really:11.1f}s {100 * error:+6.1f}% {mark}")
        return error

    seen = set()
    for t, e in events:
        if e.kind == "iteration" and e.stage not in seen:
            seen.add(e.stage)
            row(t, e)
    verdicts = []
    for share in CHECKS:
        t, e = next((t, e) for t, e in events if e.fraction >= share)
        error = row(t, e, f"<- {100 * share:.0f}% of the work")
        verdicts.append(error is not None and abs(error) <= TOLERANCE)
    print(f"within {100 * TOLERANCE:.0f}% at {', '.join(f'{100 * s:.0f}%' for s in CHECKS)} "
          f"of the work: {'yes' if all(verdicts) else 'NO'}")
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Time to draw 50 random samples at full size and at 2x size, and the peak memory.

    python benchmarks/bench_sample.py --size 188x250            # the reference table's size
    python benchmarks/bench_sample.py --amp bf16 --json out.json
    python benchmarks/bench_sample.py --model_dir TrainedModels/rocket/scale_factor=0.750000,alpha=10

Without --model_dir the pyramid of the image is built with random weights (sampling costs
the same whatever the weights).
"""
import argparse
import time

import torch

from common import (DEFAULT_IMAGE, REFERENCE_SAMPLE_50_S, describe_machine, load_image,
                    peak_memory_mb, plan_and_reals, random_pyramid, sync, write_json)
from singan import load_model
from singan.devices import autocast_context


def bench(pyramid, num_samples, scales, device, amp, repeats=2):
    rows = []
    autocast = autocast_context(torch.device(device), amp)
    for scale in scales:
        g = torch.Generator(device).manual_seed(0)
        with autocast():
            pyramid.sample(2, scale_v=scale, scale_h=scale, generator=g)   # warm-up
        best = float("inf")
        for _ in range(repeats):
            sync(device)
            start = time.perf_counter()
            with autocast():
                out = pyramid.sample(num_samples, scale_v=scale, scale_h=scale, generator=g)
            sync(device)
            best = min(best, time.perf_counter() - start)
        rows.append({"num_samples": num_samples, "height": out.shape[2], "width": out.shape[3],
                     "seconds": best, "size_factor": scale, "amp": amp,
                     "peak_memory_mb": peak_memory_mb(device)})
        r = rows[-1]
        print(f"{num_samples} samples of {r['height']}x{r['width']}: {best:.2f} s "
              f"({num_samples / best:.1f} samples/s), peak memory {r['peak_memory_mb']:.0f} MB",
              flush=True)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", default=str(DEFAULT_IMAGE))
    parser.add_argument("--size", default=None, help="resize the image to HxW first")
    parser.add_argument("--model_dir", default=None, help="a trained model instead")
    parser.add_argument("--num_samples", type=int, default=50)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--amp", default="none", choices=["none", "bf16", "fp16"])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per size (best)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(describe_machine())
    if args.model_dir:
        pyramid = load_model(args.model_dir, device=args.device)
    else:
        image = load_image(args.image, args.size, args.device)
        plan, reals = plan_and_reals(image)
        pyramid = random_pyramid(reals, plan.scale_factor, plan.n_scales, args.device)
    h, w = pyramid.reals[-1].shape[2:]
    print(f"{pyramid.num_scales} scales, finest {h}x{w}, amp {args.amp}; the reference takes "
          f"{REFERENCE_SAMPLE_50_S:.0f} s for 50 samples at 188x250 in fp32")
    rows = bench(pyramid, args.num_samples, (1.0, 2.0), args.device, args.amp, args.repeats)
    write_json(args.json, rows)


if __name__ == "__main__":
    main()

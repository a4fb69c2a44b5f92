"""Train the same image in fp32 and under --amp (same seed), and put their samples side by side.

    python benchmarks/amp_grid.py                                  # rocket, max_size 40, 100 it
    python benchmarks/amp_grid.py --max_size 250 --niter 2000 --device cuda --amp fp16

Writes one PNG (default docs/amp_grid.png, enlarged --zoom times): row 1 the training image then fp32 samples, row 2
the training image then --amp samples (drawn under the same autocast). The models go to
TrainedModels/amp_grid/<none|bf16|fp16>/ and are reused when present. It prints the seconds
each training took and the paper's diversity of each set of samples.
"""
import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from common import DEFAULT_IMAGE, ROOT, describe_machine
from singan import train_model
from singan.methods.singan.hparams import SinGANConfig
from singan.image_io import save_grid
from singan.metrics import diversity
from singan.devices import autocast_context


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", default=str(DEFAULT_IMAGE))
    parser.add_argument("--amp", default="bf16", choices=["bf16", "fp16"])
    parser.add_argument("--max_size", type=int, default=40)
    parser.add_argument("--niter", type=int, default=100)
    parser.add_argument("--num_samples", type=int, default=5, help="samples per row")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--zoom", type=int, default=3, help="nearest-neighbour enlargement")
    parser.add_argument("--out", default=str(ROOT / "docs" / "amp_grid.png"))
    args = parser.parse_args()
    print(describe_machine())
    rows = []
    for amp in ("none", args.amp):
        cfg = SinGANConfig(max_size=args.max_size, min_size=min(25, args.max_size),
                           niter=args.niter, amp=amp)
        start = time.perf_counter()
        pyramid = train_model(args.image, cfg, ROOT / "TrainedModels" / "amp_grid" / amp,
                              device=args.device, seed=args.seed, show_progress=False)
        seconds = time.perf_counter() - start
        generator = torch.Generator(pyramid.device).manual_seed(args.seed)
        with autocast_context(pyramid.device, amp)():
            samples = pyramid.sample(args.num_samples, generator=generator).float()
        print(f"amp {amp}: trained in {seconds:.0f} s ({pyramid.folder}); diversity of "
              f"{args.num_samples} samples {diversity(samples, pyramid.reals[-1]):.3f}")
        rows += [pyramid.reals[-1]] + [s[None] for s in samples]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    rows = [F.interpolate(r, scale_factor=args.zoom, mode="nearest") for r in rows]
    save_grid(args.out, rows, columns=args.num_samples + 1)
    print(f"wrote {args.out} (row 1: fp32, row 2: {args.amp})")


if __name__ == "__main__":
    main()

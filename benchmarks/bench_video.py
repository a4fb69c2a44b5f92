"""One animation written as a GIF and as an MP4 (H.264): file sizes and writing times.

    python benchmarks/bench_video.py --model_dir TrainedModels/<image>/scale_factor=0.750000_noise_padding
    python benchmarks/bench_video.py --input_name hubble_deep_field.png --max_size 96 --niter 150

Without --model_dir it trains (or reuses) the animation model of --input_name, as animation.py
does. The walk is start scale 1, alpha 0.1, beta 0.9 unless told otherwise; both files get the
same frames.
"""
import argparse
import time
from pathlib import Path

import torch

from common import ROOT, describe_machine, write_json
from singan import SinGANConfig, load_model, model_folder, train_model
from singan.apps.animation import write_gif, write_mp4
from singan.layers import ANIMATION_MIN_SIZE


def timed(write, path, frames, fps):
    start = time.perf_counter()
    write(path, frames, fps)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_dir", help="a trained animation model")
    parser.add_argument("--input_name", default="hubble_deep_field.png",
                        help="image in Input/Images/ to train on without --model_dir")
    parser.add_argument("--max_size", type=int, default=96)
    parser.add_argument("--niter", type=int, default=150)
    parser.add_argument("--start_scale", type=int, default=1)
    parser.add_argument("--beta", type=float, default=0.9)
    parser.add_argument("--num_frames", type=int, default=100)
    parser.add_argument("--fps", type=float, default=10)
    parser.add_argument("--out", default="Output/bench_video", help="folder of the two files")
    parser.add_argument("--json", help="write the figures to this JSON file")
    args = parser.parse_args()

    if args.model_dir:
        model = load_model(args.model_dir)
    else:
        cfg = SinGANConfig(max_size=args.max_size, niter=args.niter,
                           min_size=ANIMATION_MIN_SIZE, pad_noise=False)
        image = ROOT / "Input" / "Images" / args.input_name
        model = train_model(image, cfg, model_folder(image.name, cfg), device="cpu", seed=0)
    generator = torch.Generator().manual_seed(0)
    frames = model.animate(0.1, args.beta, args.start_scale, args.num_frames, generator)
    out = Path(args.out)
    row = {"frames": args.num_frames, "height": frames.shape[2], "width": frames.shape[3],
           "fps": args.fps}
    for name, write in (("gif", write_gif), ("mp4", write_mp4)):
        path = out / f"animation.{name}"
        row[f"{name}_seconds"] = round(timed(write, path, frames, args.fps), 3)
        row[f"{name}_bytes"] = path.stat().st_size
    row["gif_over_mp4"] = round(row["gif_bytes"] / row["mp4_bytes"], 2)
    print(f"{args.num_frames} frames of {row['height']}x{row['width']} at {args.fps:g} fps: "
          f"GIF {row['gif_bytes'] / 1024:.0f} KB ({row['gif_seconds']} s), MP4 "
          f"{row['mp4_bytes'] / 1024:.0f} KB ({row['mp4_seconds']} s): the GIF is "
          f"{row['gif_over_mp4']}x the MP4")
    if args.json:
        write_json(args.json, {"machine": describe_machine(), "rows": [row]})


if __name__ == "__main__":
    main()

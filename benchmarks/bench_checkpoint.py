"""What saving the running stage costs: seconds per save, and its share of the training time.

    python benchmarks/bench_checkpoint.py                 # the finest scale of a 250 px model

For SinGAN's finest scale (128 channels, 188 x 250 by default) and ConSinGAN's last stage of a
250 px model, it builds the stage as the driver does (methods/singan/train.py / methods/consingan/train.py,
the coarser levels at random weights), plays --iters iterations so that the optimisers hold
their state, then times the driver's save of the running stage (StageRun.state(), the
checksum, the atomic durable write of running_stage.pth) --repeats times, best of them. The
share is that time against --checkpoint_minutes of training (default 10).
"""
import argparse
import tempfile
import time
from pathlib import Path

import torch

from common import DEFAULT_IMAGE, describe_machine, load_image, plan_and_reals, random_pyramid
from singan.checkpoint import RUNNING_NAME, save_checkpoint
from singan.methods.consingan.hparams import ConSinGANConfig
from singan.driver import running_checkpoint
from singan.methods.consingan.train import ConSinGANTrainer
from singan.methods.singan.hparams import SinGANConfig
from singan.methods.singan.models import Discriminator, Generator, channels_at_scale, init_weights
from singan.methods.singan.train import ScaleTrainer


def singan_run(image):
    plan, reals = plan_and_reals(image)
    n = plan.stop_scale
    pyramid = random_pyramid(reals, plan.scale_factor, n, "cpu")
    G, D = Generator(*channels_at_scale(n)), Discriminator(*channels_at_scale(n))
    init_weights(G), init_weights(D)
    return f"SinGAN scale {n}, {reals[n].shape[2]} x {reals[n].shape[3]}", \
        ScaleTrainer(n, pyramid, G, D, SinGANConfig(), torch.Generator().manual_seed(0))


def consingan_run(image):
    trainer = ConSinGANTrainer(image, ConSinGANConfig())
    run = None
    for k in range(trainer.plan.n_stages):      # grow the generator to its last stage
        run = trainer.begin_stage(k, 0)
        if k < trainer.plan.stop_scale:         # (its critic as a finished stage's)
            trainer.discriminators.append(run.D.state_dict())
    h, w = trainer.plan.shapes[-1]
    return f"ConSinGAN stage {trainer.plan.stop_scale}, {h} x {w}", run


def seconds_per_save(run, folder: Path, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        save_checkpoint(folder / RUNNING_NAME, running_checkpoint({}, 0, 1, 2000, run))
        best = min(best, time.perf_counter() - start)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", default=str(DEFAULT_IMAGE))
    parser.add_argument("--size", default="188x250")
    parser.add_argument("--iters", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--checkpoint_minutes", type=float, default=10.0)
    args = parser.parse_args()
    print(describe_machine())
    image = load_image(args.image, args.size, "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        for build in (singan_run, consingan_run):
            name, run = build(image)
            start = time.perf_counter()
            for it in range(args.iters):
                run.step(it)
            per_iter = (time.perf_counter() - start) / args.iters
            seconds = seconds_per_save(run, Path(tmp), args.repeats)
            size = (Path(tmp) / RUNNING_NAME).stat().st_size / 2 ** 20
            share = seconds / (60 * args.checkpoint_minutes)
            print(f"{name}: a save takes {seconds:.3f} s ({size:.1f} MiB), {100 * share:.3f}% "
                  f"of {args.checkpoint_minutes:g} minutes (an iteration here: {per_iter:.2f} s)")


if __name__ == "__main__":
    main()

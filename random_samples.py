"""Random samples from a trained SinGAN, at any start scale or at arbitrary sizes.

Its options and its work live in singan/cli/random_samples.py; `python -m singan random_samples --help`
(or `singan random_samples` where singan is installed) is the same command.
"""
from singan.cli import run
from singan.cli.random_samples import main

if __name__ == "__main__":
    run(main)

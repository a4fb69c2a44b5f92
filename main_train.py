"""Train SinGAN (or ConSinGAN) on one image, then write 50 random samples.

Its options and its work live in singan/cli/main_train.py; `python -m singan main_train --help`
(or `singan main_train` where singan is installed) is the same command.
"""
from singan.cli import run
from singan.cli.main_train import main

if __name__ == "__main__":
    run(main)

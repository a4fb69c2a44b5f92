"""Super-resolution: upsample an image by --sr_factor with SinGAN (SPEC section 8).

Its options and its work live in singan/cli/sr.py; `python -m singan sr --help`
(or `singan sr` where singan is installed) is the same command.
"""
from singan.cli import run
from singan.cli.sr import main

if __name__ == "__main__":
    run(main)

"""Harmonization: blend a pasted object into a trained image (SinGAN, SPEC section 8).

Its options and its work live in singan/cli/harmonization.py; `python -m singan harmonization --help`
(or `singan harmonization` where singan is installed) is the same command.
"""
from singan.cli import run
from singan.cli.harmonization import main

if __name__ == "__main__":
    run(main)

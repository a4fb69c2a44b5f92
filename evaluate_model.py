"""Evaluate a trained ConSinGAN model as the reference's evaluate_model.py does for its mode.

Its options and its work live in singan/cli/evaluate_model.py; `python -m singan evaluate_model --help`
(or `singan evaluate_model` where singan is installed) is the same command.
"""
from singan.cli import run
from singan.cli.evaluate_model import main

if __name__ == "__main__":
    run(main)

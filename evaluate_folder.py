"""The SinGAN paper's evaluation (arXiv 1905.01164, Table 2) over a folder's trained models.

Its options and its work live in singan/cli/evaluate_folder.py; `python -m singan evaluate_folder --help`
(or `singan evaluate_folder` where singan is installed) is the same command.
"""
from singan.cli import run
from singan.cli.evaluate_folder import main

if __name__ == "__main__":
    run(main)

"""Editing: make a rough cut-and-paste edit of a trained image look natural (SinGAN, SPEC 8).

Its options and its work live in singan/cli/editing.py; `python -m singan editing --help`
(or `singan editing` where singan is installed) is the same command.
"""
from singan.cli import run
from singan.cli.editing import main

if __name__ == "__main__":
    run(main)

"""Paint to image: turn a rough colour painting into an image like the trained one (SPEC 8).

Its options and its work live in singan/cli/paint2image.py; `python -m singan paint2image --help`
(or `singan paint2image` where singan is installed) is the same command.
"""
from singan.cli import run
from singan.cli.paint2image import main

if __name__ == "__main__":
    run(main)

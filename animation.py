"""Animation: GIFs of a trained image coming to life (SinGAN, SPEC section 8).

Its options and its work live in singan/cli/animation.py; `python -m singan animation --help`
(or `singan animation` where singan is installed) is the same command.
"""
from singan.cli import run
from singan.cli.animation import main

if __name__ == "__main__":
    run(main)

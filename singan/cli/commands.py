"""`singan COMMAND [options]` (the installed entry point) and `python -m singan COMMAND`: the
top-level scripts of a checkout, from any folder. Each command is the script of the same name
(SR.py: `sr`), with the same options; `singan COMMAND --help` lists them.
"""
import importlib
import sys
from typing import List, Optional

from . import run

# command (its module in singan.cli: the script's name, lower case) -> what it does
COMMANDS = {
    "main_train": "train SinGAN or ConSinGAN on an image (or a folder), then write "
                  "random samples",
    "random_samples": "random samples of a trained model, at any start scale or size",
    "harmonization": "blend a pasted object into a trained image",
    "editing": "make a rough edit of a trained image look natural",
    "paint2image": "turn a rough painting into an image like the trained one",
    "sr": "super-resolution (SR.py)",
    "animation": "animations of a trained image",
    "evaluate_model": "ConSinGAN's evaluation of a trained model",
    "evaluate_folder": "the SinGAN paper's Table 2 over a folder's models",
    "studio": "the web studio (local, or a shared server with accounts)",
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: singan COMMAND [options]   (singan COMMAND --help: its options)", "",
             "commands (the scripts of a checkout, under the same names):"]
    lines += [f"  {name:<{width}}  {about}" for name, about in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> None:
    """Run one command: the script's main() under run(), as `python SCRIPT.py` would."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        sys.exit(0 if argv else 2)
    name = argv[0].lower().removesuffix(".py")
    if name not in COMMANDS:
        print(f"singan: error: unknown command {argv[0]!r}; one of: {', '.join(COMMANDS)}",
              file=sys.stderr)
        sys.exit(2)
    module = importlib.import_module(f"{__package__}.{name}")
    sys.argv = [f"singan {name}", *argv[1:]]   # argparse's prog and options_given read these
    run(module.main)

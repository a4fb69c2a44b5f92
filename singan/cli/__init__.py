"""What every command-line script shares: one-line errors, exit codes, seeds, folders."""
import argparse
import random
import sys
from pathlib import Path

from ..errors import SinGANError
from ..guards import Terminated, raise_on_sigterm


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad option as one line on stderr (no usage dump), exit 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def run(main) -> None:
    """Run a script's main(): a SinGANError becomes one line on stderr and exit code 2, and
    so do the failures that are the machine's, not the program's (a file that cannot be
    written or read, memory exhausted); Ctrl-C exits with code 130 and SIGTERM with 143,
    both saying how to go on (a training saves its running stage first)."""
    raise_on_sigterm()
    try:
        main()
    except SinGANError as err:
        _fail(str(err))
    except Terminated as err:
        detail = str(err) or "what had finished is saved; run the same command again to resume"
        print(f"\nterminated: {detail}", file=sys.stderr)
        sys.exit(143)
    except KeyboardInterrupt as err:
        detail = str(err) or "what had finished is saved; run the same command again to resume"
        print(f"\ninterrupted: {detail}", file=sys.stderr)
        sys.exit(130)
    except MemoryError:
        _fail("out of memory; use a smaller --max_size or a smaller image")
    except OSError as err:
        if err.filename is None:
            raise
        _fail(f"{err.filename}: {err.strerror or type(err).__name__}")
    except RuntimeError as err:   # torch.OutOfMemoryError (a GPU out of memory)
        if type(err).__name__ != "OutOfMemoryError":
            raise
        _fail("out of GPU memory; use a smaller --max_size, or --device cpu")


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def resolve_seed(seed):
    """The reference draws a random seed in 1..10000 when none is given; we say which."""
    if seed is None:
        seed = random.randint(1, 10000)
        print(f"random seed: {seed} (pass --manualSeed {seed} to repeat this run)")
    return seed


def image_stem(name: str) -> str:
    """'colusseum.png' -> 'colusseum' (the reference's input_name[:-4], for any extension)."""
    return Path(name).stem


def find_image(input_dir: str, input_name: str) -> Path:
    """The training image: input_name inside input_dir, or input_name as a path by itself."""
    candidates = [Path(input_dir) / input_name, Path(input_name)]
    for path in candidates:
        if path.exists():
            return path
    raise SinGANError(f"image not found: {candidates[0]} (check --input_dir and --input_name)")

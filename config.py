"""The scripts' shared command-line options (argparse only) live in singan/cli/options.py, so
that an installed singan has them too; `import config` (or `from config import ...`) is that
module."""
import sys

from singan.cli import options

sys.modules[__name__] = options

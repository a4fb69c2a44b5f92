"""`python -m singan COMMAND [options]`: the installed `singan` command (singan.cli.commands)."""
from .cli.commands import main

main()

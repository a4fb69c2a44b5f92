"""The one exception type for bad input that the user can fix.

Library code raises :class:`SinGANError` with a message that says what is wrong and how to fix
it; the command-line scripts print that message as one line on stderr and exit non-zero, with
no traceback (see :func:`singan.cli.run`).
"""


class SinGANError(Exception):
    """Bad input or a bad state on disk: the message is meant for the user, as it is."""

"""The error a user can fix: raised anywhere in the package, shown by the command line as one line and exit
status 2 (argparse's status for a usage error), never as a traceback. Other exceptions are bugs and keep theirs."""

from __future__ import annotations


class UserError(ValueError):
    """Bad input or settings the user can correct; the message names the file or option and the fix."""

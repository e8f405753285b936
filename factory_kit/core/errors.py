"""One exception type for every error a user can act on.

The CLI prints ``str(err)`` on one line and exits non-zero; nothing below the CLI prints
tracebacks for these. Messages name the file (and line/key) and say what to do.
"""


class FactoryKitError(Exception):
    """An error with a one-line, actionable message."""

    exit_code = 2


class LaunchError(FactoryKitError):
    """A child process (llamafactory-cli, lm-eval...) exited non-zero."""

    exit_code = 1

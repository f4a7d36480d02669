"""The errors that are the user's to fix, told apart from bugs by where they are raised.

A :class:`UserError` is raised only where what the user gave is read or checked: a command-line
argument, a config value or key, a file the user named (``hidiff_mm.utils.cli.run`` prints it
as one line, exit status 2; ``tools/train.py`` as a training fault). Any other exception,
whatever its type, is a bug and keeps its traceback (``cli.user_input`` also marks the errors
raised while a tool parses its arguments and reads its config and files; see ``cli``). The
concrete classes also derive from ``ValueError``, so code that catches bad values keeps
working.
"""


class UserError(Exception):
    """Something the user gave is not acceptable; the message says which and what was
    expected. ``user_error`` is how ``hidiff_mm.utils.cli`` (which imports nothing from the
    package) recognises it; the class attribute survives the re-raise of an error from a
    DataLoader worker, which rebuilds the exception from its class and message."""

    user_error = True


class InputError(UserError, ValueError):
    """A command-line argument, or a file the user named (a checkpoint, an image, a dataset
    folder), that cannot be used."""


class ConfigError(UserError, ValueError):
    """A config value or key (or an argument given to a registered class by a config) that is
    not acceptable."""

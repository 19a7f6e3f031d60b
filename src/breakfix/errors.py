"""Errors that the CLI maps to a one-line message and exit code 2.

Anything else reaching the CLI's boundary is a bug in breakfix and keeps its traceback.
"""


class BreakfixError(Exception):
    """A known, user-facing failure: bad target, bad inputs, timeout, unwritable file."""

    exit_code = 2


class TargetError(BreakfixError):
    """The target or inputs spec cannot be resolved, imported or called."""


class WorkerTimeout(BreakfixError):
    """A worker process exceeded --timeout and was killed."""


class WorkerCrashed(BreakfixError):
    """A worker process died without writing its response (os._exit, segfault, OOM)."""


class WriteRefused(BreakfixError):
    """A verified rewrite could not be written safely (changed on disk, read-only, outside root)."""


class CannotVerify(BreakfixError):
    """No rewrite of this target can be verified: identically seeded eager runs differ."""


class FileChangedOnDisk(WriteRefused):
    """A file changed on disk between reading it and writing its verified rewrite."""


class ConfigError(BreakfixError):
    """The ``[tool.breakfix]`` table of pyproject.toml is malformed."""


class UnknownCode(BreakfixError):
    """`breakfix explain` was given neither a codemod code nor a GB id torch knows."""

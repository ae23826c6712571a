"""Typed errors of hggt_basicsr.

Every error a user can cause by bad input (a file, a folder, an option) is an :class:`HGGTError`. The console
scripts print such an error as one line and exit with code 2; library callers can catch the precise subclass.
The subclasses also derive from the matching builtin so ``except ValueError`` keeps working.
"""

from __future__ import annotations


class HGGTError(Exception):
    """Base class of all user-facing errors of hggt_basicsr."""


class ConfigError(HGGTError, ValueError):
    """A bad option: the message names the option path, e.g. ``datasets.train.group_filter``."""


class DataError(HGGTError, ValueError):
    """Bad data on disk: the message names the file or folder and the problem."""


class MissingFolderError(ConfigError, DataError):
    """An option names a folder that does not exist: a bad option and missing data at once."""


class WeightsError(HGGTError, FileNotFoundError):
    """Missing or unusable weights: the message names the file and where to put it."""


class CLIError(HGGTError):
    """A bad command-line argument."""

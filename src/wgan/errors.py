"""The exceptions of wgan. Imports nothing of ours, so every module may import it.

Every user-facing error message is one line naming the bad value and what is accepted; the CLI
prints it and exits with the status below (``wgan.cli``):

========================  ============================================  ======
error                     raised for                                    status
========================  ============================================  ======
:class:`ConfigError`      a bad setting (flag, TOML key, preset)        2
:class:`DataError`        a data file or folder that cannot be used     2
:class:`CheckpointError`  a missing, corrupt or unsafe checkpoint       2
:class:`TrainingDiverged` a loss or weight became NaN or Inf            1
========================  ============================================  ======
"""

from __future__ import annotations


class WganError(Exception):
    """Base of every error wgan raises on purpose (never for internal invariants)."""


class ConfigError(WganError, ValueError):
    """A bad configuration value; the message names the field, the value and what is accepted."""


class DataError(ConfigError):
    """A data file that cannot be used; the one-line message names the file and the problem."""


class CheckpointError(WganError, RuntimeError):
    """A checkpoint that cannot be used: missing, corrupt, unsafe or from another format."""


class TrainingDiverged(WganError, RuntimeError):
    """A loss became NaN or Inf; the message names the step and the term."""

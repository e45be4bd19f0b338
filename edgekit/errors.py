"""One error family for edgekit: every error carries the exit code the CLI returns for it."""

from __future__ import annotations


class EdgekitError(Exception):
    """Base of every error edgekit raises on purpose; the message is shown to the user as one line."""

    exit_code = 1


class InputError(EdgekitError):
    """A path, file or option value edgekit cannot use (exit 1)."""


class ConversionError(EdgekitError):
    """The TFLite converter or a conversion step failed (exit 1)."""


class RuntimeNotFound(EdgekitError):
    """No TFLite interpreter could be imported on this machine (exit 1)."""


class UsageError(EdgekitError):
    """Options that contradict each other (exit 2, like a command-line usage error)."""

    exit_code = 2


class BudgetExceeded(EdgekitError):
    """Measured latency is over the budget (exit 3)."""

    exit_code = 3


class CheckFailed(EdgekitError):
    """A check failed: integrity, fidelity or accuracy (exit 4)."""

    exit_code = 4


class IntegrityError(CheckFailed):
    """A bundle's files do not match its manifest (exit 4)."""


class FidelityError(CheckFailed):
    """A converted model disagrees with its source beyond the allowed threshold (exit 4)."""


class DeviceError(EdgekitError):
    """The device cannot be reached or the SSH connection to it failed (exit 5)."""

    exit_code = 5

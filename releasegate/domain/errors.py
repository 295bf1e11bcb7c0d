"""Errors the gate raises. Each one says what went wrong and what to do about it."""


class ReleaseGateError(Exception):
    """Base class for the gate's own errors."""


class PolicyError(ReleaseGateError):
    """The policy file cannot be used: names the file, the field and the fix."""


class StageError(ReleaseGateError):
    """A stage's tool could not run, crashed, timed out or wrote output that cannot be read.

    A finding is data, never a StageError: this is only for "the tool could not tell us".
    """


class ProvisionError(ReleaseGateError):
    """The service under test could not be started or did not become healthy."""

"""Named errors and warnings raised by priorfit."""


class PriorfitError(Exception):
    """Base class of every error priorfit raises on purpose."""


class ConfigError(PriorfitError, ValueError):
    """A configuration (dataclass or JSON) has an unknown field, a missing field or a bad value."""


class CheckpointError(PriorfitError, ValueError):
    """A checkpoint is missing, truncated, corrupted (sha256 mismatch) or from an unknown format."""


class InputDataError(PriorfitError, ValueError):
    """User data that priorfit cannot condition on: NaN, wrong shape, too many points or features."""


class OutOfDomainWarning(UserWarning):
    """Inputs lie outside the input domain that the model's prior covers."""

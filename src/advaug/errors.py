"""Exceptions whose message names the offending file or key and says how to fix it."""


class AdvaugError(Exception):
    """Base class for errors a user can fix; entry scripts print them without a traceback."""


class DatasetError(AdvaugError, ValueError):
    """A dataset folder, file or split is unusable."""


class ConfigError(AdvaugError, ValueError):
    """A configuration value is out of range or inconsistent."""


class TrainingDivergedError(AdvaugError, RuntimeError):
    """The loss became NaN or infinite."""

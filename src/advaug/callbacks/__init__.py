"""Lightning callbacks: validation history (for Table 1) and augmentation producers."""

from advaug.callbacks.metrics_history import MetricsHistory

__all__ = ["MetricsHistory"]

"""Lightning callbacks: checkpoints, validation history (for Table 1) and augmentation producers."""

from advaug.callbacks.adversarial import AdversarialAugmentation
from advaug.callbacks.checkpoint import RunCheckpoint
from advaug.callbacks.ddp_sigterm import DdpSigterm
from advaug.callbacks.gan_pool import GanPool
from advaug.callbacks.metrics_history import MetricsHistory
from advaug.callbacks.pool import PoolCallback
from advaug.callbacks.progress import ProgressBar
from advaug.callbacks.splits_record import SplitsRecord
from advaug.callbacks.transform_pool import TransformPool

__all__ = [
    "AdversarialAugmentation",
    "DdpSigterm",
    "GanPool",
    "MetricsHistory",
    "PoolCallback",
    "ProgressBar",
    "RunCheckpoint",
    "SplitsRecord",
    "TransformPool",
]

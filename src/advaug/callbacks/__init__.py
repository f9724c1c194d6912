"""Lightning callbacks: checkpoints, validation history (for Table 1) and augmentation producers."""

from advaug.callbacks.advchain_pool import AdvChainPool
from advaug.callbacks.adversarial import RegenerateAdversarial
from advaug.callbacks.adversarial_mode import adversarial_augmentation
from advaug.callbacks.checkpoint import RunCheckpoint
from advaug.callbacks.free_adversarial import FreeAdversarial
from advaug.callbacks.gan_pool import GanPool
from advaug.callbacks.metrics_history import MetricsHistory
from advaug.callbacks.pool import PoolCallback
from advaug.callbacks.progress import ProgressBar
from advaug.callbacks.splits_record import SplitsRecord
from advaug.callbacks.transform_pool import TransformPool

__all__ = [
    "AdvChainPool",
    "FreeAdversarial",
    "GanPool",
    "MetricsHistory",
    "PoolCallback",
    "RegenerateAdversarial",
    "ProgressBar",
    "RunCheckpoint",
    "SplitsRecord",
    "TransformPool",
    "adversarial_augmentation",
]

"""Multi-process runs: which process writes outputs, and which launch combinations are refused."""

from __future__ import annotations

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.fabric.utilities.rank_zero import rank_zero_only

from advaug.errors import ConfigError
from advaug.utils.lightning_compat import relaunches_script


def is_rank_zero() -> bool:
    """True in the process that writes run outputs (global rank 0, or the only process).

    Usable before the Trainer exists: Lightning reads the rank from ``RANK``/``LOCAL_RANK``/
    ``SLURM_PROCID`` at import, which is how its DDP children and SLURM tasks are told apart.
    """
    return getattr(rank_zero_only, "rank", 0) == 0


def in_multirun() -> bool:
    """True inside a job of a Hydra sweep (``-m``), whichever launcher runs it."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def check_launch(trainer: L.Trainer) -> None:
    """Refuse a script-relaunching DDP run inside a Hydra sweep, before it forks itself.

    Lightning's DDP launcher starts ranks > 0 by re-running ``sys.argv``; inside ``-m`` that
    re-runs the whole sweep in each child (Lightning #11300, #18175; Hydra #2070). Processes
    created by a cluster (SLURM through hydra/launcher=submitit_slurm, torchrun) are fine.
    """
    if relaunches_script(trainer) and trainer.num_devices > 1 and in_multirun():
        raise ConfigError(
            f"trainer.strategy=ddp with trainer.devices={trainer.num_devices} inside a Hydra sweep (-m): "
            "Lightning would re-run the whole sweep in every DDP process. Sweep with single-device jobs "
            "(trainer=gpu; to use several GPUs, one sweep per GPU with its own CUDA_VISIBLE_DEVICES), "
            "run DDP as single runs (no -m), or sweep on SLURM (hydra/launcher=slurm_gpu with "
            f"hydra.launcher.tasks_per_node={trainer.num_devices}), whose tasks are the DDP processes "
            "(see docs/scale.md)."
        )

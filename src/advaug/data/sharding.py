"""How a split is shared between DDP ranks: the checks that keep every rank's batches usable."""

from __future__ import annotations

import logging
import math

from torch.utils.data import Dataset, Sampler

from advaug.errors import ConfigError

log = logging.getLogger(__name__)


def check_eval_shards(split: str, size: int, world_size: int) -> None:
    """Refuse a DDP evaluation split with fewer samples than processes, in one message.

    Lightning's ``UnrepeatedDistributedSampler`` fails a bare ``assert`` on a rank left without a
    sample, and rank 0 then reports "Connection closed by peer". Every rank sees the same split
    sizes, so all of them stop here alike, before any of them waits on the others.
    """
    if size < world_size:
        raise ConfigError(
            f"the {split} split has {size} sample(s) but this DDP run has {world_size} processes, "
            f"and each evaluates at least one sample: put at least {world_size} samples in the "
            f"{split} split (dataset.split or splits.json) or run on fewer devices (trainer.devices, "
            "trainer.num_nodes)."
        )


def drops_single_last(num_samples: int, batch_size: int, world_size: int) -> bool:
    """Whether the last training batch of each rank would hold one sample: BatchNorm cannot
    train on it ("Expected more than 1 value per channel"), so it is dropped (one sample per
    epoch, a different one each epoch as the order is shuffled)."""
    per_rank = math.ceil(num_samples / world_size)  # Lightning's DistributedSampler pads to this
    drop = batch_size > 1 and per_rank > 1 and per_rank % batch_size == 1
    if drop:
        log.info(
            "train: %d samples per rank at batch size %d leave a last batch of 1, which BatchNorm "
            "cannot train on; it is dropped each epoch",
            per_rank,
            batch_size,
        )
    return drop


def eval_sampler(split: str, dataset: Dataset, rank: int, world_size: int) -> Sampler | None:
    """Under DDP every sample of an evaluation split exactly once over all ranks (Lightning's
    default sampler would pad uneven shards with repeats and bias the dataset-level metrics);
    None on one process."""
    if world_size <= 1:
        return None
    from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler

    check_eval_shards(split, len(dataset), world_size)
    return UnrepeatedDistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=False)

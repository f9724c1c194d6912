"""``Schedule``: which epochs train on a freshly made pool, one meaning for every producer."""

from __future__ import annotations

from dataclasses import dataclass

from advaug.errors import ConfigError


@dataclass(frozen=True)
class Schedule:
    """A fresh pool for epoch ``start_epoch``, then for every ``every_n_epochs``-th epoch after it;
    ``every_n_epochs=0`` makes one pool at ``start_epoch`` and keeps it for the rest of the run.
    Between fresh pools an epoch trains on the last one made; before ``start_epoch``, on none."""

    start_epoch: int = 0
    every_n_epochs: int = 1

    def __post_init__(self) -> None:
        if int(self.every_n_epochs) < 0 or int(self.start_epoch) < 0:
            raise ConfigError(
                f"aug.every_n_epochs={self.every_n_epochs}, aug.start_epoch={self.start_epoch}: both must be "
                ">= 0 (every_n_epochs=0 makes one pool at start_epoch and keeps it)."
            )

    def due(self, epoch: int | None) -> bool:
        """Whether ``epoch`` trains on a pool made for it."""
        if epoch is None or epoch < self.start_epoch:
            return False
        if self.every_n_epochs == 0:
            return epoch == self.start_epoch
        return (epoch - self.start_epoch) % self.every_n_epochs == 0

"""LossWatch: the first non-finite loss raises, named by its step, without waiting on the device."""

import math

import pytest
import torch

from advaug.errors import TrainingDivergedError
from advaug.models.divergence import LossWatch


class FakeEvent:
    """Stands in for a CUDA event: not done until the test says so; counts the waits."""

    def __init__(self) -> None:
        self.done, self.waits = False, 0

    def query(self) -> bool:
        return self.done

    def synchronize(self) -> None:
        self.waits += 1
        self.done = True


class FakeDeviceWatch(LossWatch):
    """A LossWatch whose staged copies complete only when their FakeEvent is marked done."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.events: list[FakeEvent] = []

    def _stage(self, value):
        self.events.append(FakeEvent())
        return value.clone(), self.events[-1]


def test_at_once_raises_in_the_step_that_diverged():
    watch = LossWatch(deferred=False)
    watch.push(torch.tensor(0.5), 0, 0, 0)
    with pytest.raises(TrainingDivergedError, match=r"loss became nan at epoch 2, step 7 \(batch 3\)"):
        watch.push(torch.tensor(math.nan), 2, 7, 3)
    assert len(watch) == 0


def test_the_message_names_a_checkpoint_only_when_one_was_written():
    from advaug.models.divergence import raise_if_diverged

    with pytest.raises(TrainingDivergedError, match=r"last.ckpt keeps the weights of the end of epoch 2\.$"):
        raise_if_diverged(math.inf, 3, 40, 1)
    with pytest.raises(
        TrainingDivergedError, match=r"no epoch had ended, so no checkpoint was written\.$"
    ) as exc:
        raise_if_diverged(math.nan, 0, 1, 1)
    assert "last.ckpt" not in str(exc.value)
    raise_if_diverged(0.3, 0, 1, 1)  # finite: nothing


def test_deferred_on_cpu_reads_the_loss_one_step_late_or_at_flush():
    watch = LossWatch(deferred=True)
    watch.push(torch.tensor(math.inf), 0, 4, 4)  # queued, not read yet
    with pytest.raises(TrainingDivergedError, match="loss became inf at epoch 0, step 4"):
        watch.push(torch.tensor(0.1), 0, 5, 5)
    watch = LossWatch(deferred=True)
    watch.push(torch.tensor(math.nan), 1, 9, 2)
    with pytest.raises(TrainingDivergedError, match="step 9"):
        watch.flush()


def test_unfinished_copies_are_not_waited_for_until_flush():
    watch = FakeDeviceWatch(deferred=True, max_pending=8)
    for step in range(3):
        watch.push(torch.tensor(1.0 if step != 1 else math.nan), 0, step, step)
    assert len(watch) == 3 and not any(e.waits for e in watch.events)  # nothing read, nothing waited
    watch.events[0].done = True
    watch.poll()  # step 0 is readable and finite; step 1 is not readable yet
    assert len(watch) == 2
    with pytest.raises(TrainingDivergedError, match="step 1 "):
        watch.flush()
    assert watch.events[1].waits == 1


def test_the_first_diverged_step_is_named_even_when_later_ones_finish_first():
    watch = FakeDeviceWatch(deferred=True)
    watch.push(torch.tensor(math.nan), 0, 10, 0)
    watch.push(torch.tensor(math.inf), 0, 11, 1)
    watch.events[1].done = True  # later copy done first: the order of the checks is kept
    watch.poll()
    assert len(watch) == 2
    with pytest.raises(TrainingDivergedError, match="loss became nan at epoch 0, step 10"):
        watch.flush()


def test_pending_losses_are_bounded_by_waiting_for_the_oldest():
    watch = FakeDeviceWatch(deferred=True, max_pending=2)
    for step in range(5):
        watch.push(torch.tensor(0.3), 0, step, step)
    assert len(watch) == 2
    assert [e.waits for e in watch.events] == [1, 1, 1, 0, 0]
    with pytest.raises(ValueError, match="max_pending"):
        LossWatch(deferred=True, max_pending=0)

"""Host-device synchronisations per training epoch on a GPU, and where they come from.

A sync (``.item()``, ``bool(tensor)``, a blocking copy) makes the host wait until the GPU has
finished everything queued, so the host cannot queue the next step meanwhile; the plain PyTorch
loop of ``train_throughput.py`` has none per step. This counts them with
``torch.cuda.set_sync_debug_mode("warn")`` over one steady epoch (epoch 1, from its start to the
next epoch's start, so the epoch-end work counts) of the ``epoch_overhead.py`` runs::

    python benchmarks/sync_count.py --device cuda --num-images 256 --size 128 --batch 16 --bf16 --channels-last

Needs CUDA (the debug mode exists only there).
"""

from __future__ import annotations

import collections
import sys
import tempfile
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lightning as L  # noqa: E402
import torch  # noqa: E402
from epoch_overhead import make_dataset, parse_args, run  # noqa: E402


class SyncCounter(L.Callback):
    """Records the sync warnings from the start of epoch 1 to the start of epoch 2 (or the end)."""

    def __init__(self) -> None:
        self.where: collections.Counter[str] = collections.Counter()
        self.steps = 0
        self._catch: warnings.catch_warnings | None = None
        self._seen: list[warnings.WarningMessage] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == 1:
            self._catch = warnings.catch_warnings(record=True)
            self._seen = self._catch.__enter__()
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
        elif trainer.current_epoch == 2:
            self._stop()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.steps += self._catch is not None

    def on_train_end(self, trainer, pl_module) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._catch is None:
            return
        torch.cuda.set_sync_debug_mode("default")
        self._catch.__exit__(None, None, None)
        self._catch = None
        for w in self._seen:
            if "synchroniz" in str(w.message):
                self.where[f"{Path(w.filename).name}:{w.lineno}"] += 1


def main(argv=None) -> dict[str, int]:
    args = parse_args(argv)
    if not args.device.startswith("cuda"):
        raise SystemExit("sync_count.py needs --device cuda (torch.cuda.set_sync_debug_mode)")
    args.epochs = max(args.epochs, 3)
    totals = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = make_dataset(Path(tmp), args.num_images, args.size)
        for kind in ("none", "regenerate", "free"):
            counter = SyncCounter()
            run(kind, root, args, extra=(counter,))
            total = sum(counter.where.values())
            totals[kind] = total
            print(f"{kind:>10}: {total} syncs in epoch 1 ({counter.steps} steps, epoch-end work included)")
            for place, n in counter.where.most_common(8):
                print(f"{'':>12}{n:5d}  {place}")
    return totals


if __name__ == "__main__":
    main()

"""Host-device synchronisations per training epoch on a GPU, and where they come from.

A sync (``.item()``, ``bool(tensor)``, a blocking copy) makes the host wait until the GPU has
finished everything queued, so the host cannot queue the next step meanwhile; the plain PyTorch
loop of ``train_throughput.py`` has none per step. This counts them with
``torch.cuda.set_sync_debug_mode("warn")`` over one steady epoch (epoch 1, from its start to the
next epoch's start, so the epoch-end work counts) of the ``epoch_overhead.py`` runs::

    python benchmarks/sync_count.py --device cuda --num-images 256 --size 128 --batch 16 --bf16 --channels-last

``--product "OVERRIDES"`` (repeatable) counts instead in whole ``src/train.py`` runs as users start
them (3 epochs, the default callbacks, logger and progress bar included), e.g.
``--product "trainer=gpu aug=none" --product "trainer=gpu aug=invfgsm aug.mode=free"``.

Needs CUDA (the debug mode exists only there).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shlex
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
ROOT = Path(__file__).resolve().parents[1]

import lightning as L  # noqa: E402
import torch  # noqa: E402
from epoch_overhead import make_dataset, parse_args, run  # noqa: E402


class SyncCounter(L.Callback):
    """Records the sync warnings from the start of epoch 1 to the start of epoch 2 (or the end)."""

    def __init__(self, report: str | None = None) -> None:
        self.report = report  # a JSON file for the counts (a run in another process)
        self.where: collections.Counter[str] = collections.Counter()
        self.steps = 0
        self._catch: warnings.catch_warnings | None = None
        self._seen: list[warnings.WarningMessage] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == 1:
            self._catch = warnings.catch_warnings(record=True)
            self._seen = self._catch.__enter__()
            warnings.simplefilter("always")
            if torch.cuda.is_available():  # (a CPU run counts nothing: there is nothing to wait for)
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
        if torch.cuda.is_available():
            torch.cuda.set_sync_debug_mode("default")
        self._catch.__exit__(None, None, None)
        self._catch = None
        for w in self._seen:
            if "synchroniz" in str(w.message):
                self.where[f"{Path(w.filename).name}:{w.lineno}"] += 1
        if self.report:
            Path(self.report).write_text(json.dumps({"steps": self.steps, "where": dict(self.where)}))


def product_run(overrides: str, folder: Path) -> tuple[int, collections.Counter]:
    """Steps and sync places of epoch 1 of ``python src/train.py <overrides>`` (3 epochs)."""
    report = folder / "syncs.json"
    command = [
        sys.executable, str(ROOT / "src" / "train.py"), *shlex.split(overrides), "trainer.max_epochs=3",
        "robustness.enabled=false", "test=false", f"hydra.run.dir={folder}",
        "+callbacks.sync._target_=sync_count.SyncCounter", f"+callbacks.sync.report={report}",
    ]  # fmt: skip
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0 or not report.is_file():
        raise SystemExit(f"src/train.py {overrides} failed:\n{done.stderr[-3000:]}")
    counts = json.loads(report.read_text())
    return counts["steps"], collections.Counter(counts["where"])


def print_counts(name: str, steps: int, where: collections.Counter) -> int:
    total = sum(where.values())
    print(f"{name:>10}: {total} syncs in epoch 1 ({steps} steps, epoch-end work included)")
    for place, n in where.most_common(8):
        print(f"{'':>12}{n:5d}  {place}")
    return total


def main(argv=None) -> dict[str, int]:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--product", action="append", default=[], help="src/train.py overrides (repeatable)")
    args = parse_args(argv, description=__doc__, parents=[p])
    if not args.device.startswith("cuda"):
        raise SystemExit("sync_count.py needs --device cuda (torch.cuda.set_sync_debug_mode)")
    args.epochs = max(args.epochs, 3)
    totals = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.product:
            for i, overrides in enumerate(args.product):
                totals[overrides] = print_counts(overrides, *product_run(overrides, Path(tmp) / f"run{i}"))
            return totals
        root = make_dataset(Path(tmp), args.num_images, args.size)
        for kind in ("none", "regenerate", "free"):
            counter = SyncCounter()
            run(kind, root, args, extra=(counter,))
            totals[kind] = print_counts(kind, counter.steps, counter.where)
    return totals


if __name__ == "__main__":
    main()

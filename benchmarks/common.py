"""What the benchmark scripts share: the device, a small data set and network, a bare Trainer, the
augmentation producers, and the callbacks that measure one epoch (clock, profiler, sync counter).

Importing it puts this checkout's ``src/`` first on ``sys.path``, so a script times the code next
to it, not an installed copy.
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import lightning as L  # noqa: E402
import torch  # noqa: E402

# -- device -------------------------------------------------------------------------------------


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def sync(device: str | torch.device) -> None:
    """Wait until ``device`` has finished its queued work (a no-op on the CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: str | torch.device) -> float:
    """Seconds of ``fn()`` including the device work it queued."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def device_name(device: str | torch.device) -> str:
    """The GPU's name, or ``cpu (<threads> threads)``."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def timing_parser(
    doc: str | None, batch: int, repeats: int, batch_help: str | None = None
) -> argparse.ArgumentParser:
    """The options of every side-by-side timing script: device, batch, size, repeats, encoder,
    CPU threads (:func:`apply_threads`); each script adds its own."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default=default_device())
    p.add_argument("--batch", type=int, default=batch, help=batch_help)
    p.add_argument("--size", type=int, default=64, help="image height = width")
    p.add_argument("--repeats", type=int, default=repeats)
    p.add_argument("--encoder", default="resnet18")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    return p


def apply_threads(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)


def time_cases(cases: dict[str, Callable[[], object]], device: str, repeats: int) -> dict[str, list[float]]:
    """Seconds of each case per repeat, after one warm-up call each (cuDNN autotune, allocator):
    interleaved so background load hits every case alike, and the order rotated each repeat so
    that no case always runs after the same one."""
    for run in cases.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for i in range(repeats):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            times[name].append(timed(cases[name], device))
    return times


def ratio_table(
    times: dict[str, list[float]], reference: str, per: int = 1, unit: str = "ms"
) -> dict[str, float]:
    """Prints ms (per ``per`` items) of each case, median and best, and the ratios to
    ``reference`` of the medians and of the bests (the best is the steadier under background
    load); returns them as ``<case>_<unit>``, ``<case>_ratio``, ``<case>_best_ratio``."""
    medians = {name: statistics.median(t) for name, t in times.items()}
    bests = {name: min(t) for name, t in times.items()}
    shown = unit.replace("_", " ")
    print(f"{'case':>18} | {shown:>12} | {'best':>8} | ratio to {reference}: median, best")
    result: dict[str, float] = {}
    for name in times:
        ms, best_ms = medians[name] / per * 1e3, bests[name] / per * 1e3
        ratio, best_ratio = medians[name] / medians[reference], bests[name] / bests[reference]
        print(f"{name:>18} | {ms:12.2f} | {best_ms:8.2f} | {ratio:.3f}, {best_ratio:.3f}")
        key = name.replace(", ", "_").replace(" ", "_")
        result[f"{key}_{unit}"] = ms
        if name != reference:
            result[f"{key}_ratio"], result[f"{key}_best_ratio"] = ratio, best_ratio
    return result


# -- data, network, Trainer -----------------------------------------------------------------------


def make_dataset(folder: Path, num_images: int, size: int) -> Path:
    """Synthetic phantoms in ``folder``: ``num_images`` in "train", one each in "val" and "test"."""
    from advaug.data.synthetic import SyntheticPhantomGenerator

    root = SyntheticPhantomGenerator(num_images=num_images + 2, size=size, seed=0).ensure(folder / "syn")
    ids = sorted(p.stem for p in (root / "images").iterdir())
    splits = {"train": ids[:num_images], "val": [ids[-2]], "test": [ids[-1]]}
    (root / "splits.json").write_text(json.dumps(splits))
    return root


NETS = ("unet", "conv1x1")


def make_net(name: str = "unet", encoder: str = "resnet18") -> torch.nn.Module:
    """The product's smp UNet, or one 1x1 convolution: so little arithmetic that a step's time is
    the loop's Python (hooks, logging, optimizer plumbing). Same init for the same name."""
    torch.manual_seed(0)
    if name == "conv1x1":
        return torch.nn.Conv2d(3, 2, 1)
    import segmentation_models_pytorch as smp

    return smp.create_model("Unet", encoder_name=encoder, encoder_weights=None, in_channels=3, classes=2)


def segmentation_module(net: torch.nn.Module, channels_last: bool = False):
    from advaug.models import SegmentationModule

    return SegmentationModule(
        net, 2, optimizer=lambda params: torch.optim.Adam(params, lr=1e-3), channels_last=channels_last
    )


def product_log_every() -> int:
    """``trainer.log_every_n_steps`` of conf/trainer/default.yaml: the benchmarks' Trainers log as
    often as a product run does (Lightning's own default, 50, would log ten times less)."""
    from omegaconf import OmegaConf

    return int(OmegaConf.load(ROOT / "conf" / "trainer" / "default.yaml").log_every_n_steps)


def bare_trainer(device: str | torch.device, bf16: bool, callbacks: list[L.Callback], **kwargs) -> L.Trainer:
    """A Trainer with the product's logging interval but no logger, checkpoint, progress bar or
    validation: the training loop only."""
    device = torch.device(device)
    kwargs = {"limit_val_batches": 0, "num_sanity_val_steps": 0, "inference_mode": False, **kwargs}
    return L.Trainer(
        log_every_n_steps=product_log_every(),
        accelerator="gpu" if device.type == "cuda" else "cpu",
        devices=[device.index or 0] if device.type == "cuda" else 1,
        precision="bf16-mixed" if bf16 else "32-true",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
        **kwargs,
    )


# -- what is timed ------------------------------------------------------------------------------


def datamodule(
    root: Path, size: int, batch: int, on_device: bool = False, pin_memory: bool = True, pool: bool = True
):
    """The product's DataModule on ``root``, set up for fit, with (``pool``) a pool as large as the
    clean set (a copy of it): every kind trains on the same number of samples per epoch."""
    from advaug.data import SegmentationDataModule

    dm = SegmentationDataModule(
        root=str(root), image_size=size, batch_size=batch, on_device=on_device, pin_memory=pin_memory
    )
    dm.prepare_data()
    dm.setup("fit")
    if pool:
        # the adversarial producers replace this slot (their default one): same samples per epoch
        dm.pool.put("adversarial", *dm.train_images())
    return dm


def adversarial(mode: str, bf16: bool = False, attack_batch: int = 32, **settings) -> L.Callback:
    """The product's FGSM producer (eps 0.1) in ``mode`` regenerate | free, drawing no figure."""
    from advaug.callbacks import adversarial_augmentation

    return adversarial_augmentation(
        "fgsm",
        eps=0.1,
        mode=mode,
        attack_batch_size=attack_batch,
        precision="bf16" if bf16 else "fp32",
        figure_samples=0,
        **settings,
    )


class InputGradOnly(L.Callback):
    """The training backward also computes the batch image's gradient, which is then dropped:
    the backward part of free mode's cost, without its hooks, slots or epoch-end work."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        batch["image"].requires_grad_(True)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        batch["image"].requires_grad_(False)
        batch["image"].grad = None


# -- what measures one epoch ----------------------------------------------------------------------


class EpochClock(L.Callback):
    """Clock readings at each training epoch's start and at the end of training. Placed after
    the augmentation callback, so an epoch's span includes that callback's epoch-end work."""

    def __init__(self, device: str) -> None:
        self.device, self.marks = device, []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        sync(self.device)
        self.marks.append(time.perf_counter())

    def on_train_end(self, trainer, pl_module) -> None:
        sync(self.device)
        self.marks.append(time.perf_counter())

    def steady_epochs(self) -> list[float]:
        """Seconds of epochs 1 .. n-2: epoch 0 pays first-call costs, the last makes no pool."""
        return [b - a for a, b in pairwise(self.marks)][1:-1]


class EpochOne(L.Callback):
    """Runs ``start()`` at the start of epoch 1 and ``stop()`` at the start of epoch 2 (or the end of
    training), so the epoch-end work of epoch 1 is inside; counts the steps in between."""

    def __init__(self) -> None:
        self.steps, self.active = 0, False

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == 1:
            self.active = True
            self.start()
        elif trainer.current_epoch == 2:
            self._end()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.steps += self.active

    def on_train_end(self, trainer, pl_module) -> None:
        self._end()

    def _end(self) -> None:
        if self.active:
            self.active = False
            self.stop()

    def start(self) -> None: ...

    def stop(self) -> None: ...


def self_times(events, device: bool) -> dict[str, float]:
    """Self time in ms per name: of the device kernels (``device``), or of the host ops.

    Kernels are counted once, by their own events: the profiler also credits each kernel's time
    to the host op that launched it, and GPU user annotations span kernels too (torch's own
    summary skips both the same way)."""
    from torch.autograd import DeviceType

    out: dict[str, float] = {}
    for e in events:
        if device:
            if e.device_type != DeviceType.CUDA or getattr(e, "is_user_annotation", False):
                continue
            us = e.self_device_time_total
        else:
            us = e.self_cpu_time_total
        if us:
            out[e.key] = out.get(e.key, 0.0) + us / 1e3
    return out


class EpochProfile(EpochOne):
    """torch.profiler over epoch 1: wall time, host self time per op, device self time per kernel."""

    def __init__(self, device: str) -> None:
        super().__init__()
        self.device, self.wall = device, 0.0
        self.host: dict[str, float] = {}
        self.kernels: dict[str, float] = {}

    def start(self) -> None:
        from torch.profiler import ProfilerActivity, profile

        cuda = self.device.startswith("cuda")
        sync(self.device)
        self._prof = profile(activities=[ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if cuda else [])])
        self._prof.__enter__()
        self._start = time.perf_counter()

    def stop(self) -> None:
        sync(self.device)
        self.wall = time.perf_counter() - self._start
        self._prof.__exit__(None, None, None)
        events = self._prof.key_averages()
        self.host = self_times(events, device=False)
        if self.device.startswith("cuda"):
            self.kernels = self_times(events, device=True)


class SyncCounter(EpochOne):
    """Host-device syncs in epoch 1, by source line, from ``torch.cuda.set_sync_debug_mode("warn")``
    (a CPU run counts none: nothing waits). ``report``: a JSON file for the counts, for a run in
    another process (``epoch_cost.py --product``)."""

    def __init__(self, report: str | None = None) -> None:
        super().__init__()
        self.report = report
        self.where: collections.Counter[str] = collections.Counter()

    def start(self) -> None:
        self._catch = warnings.catch_warnings(record=True)
        self._seen = self._catch.__enter__()
        warnings.simplefilter("always")
        if torch.cuda.is_available():
            torch.cuda.set_sync_debug_mode("warn")

    def stop(self) -> None:
        if torch.cuda.is_available():
            torch.cuda.set_sync_debug_mode("default")
        self._catch.__exit__(None, None, None)
        for w in self._seen:
            if "synchroniz" in str(w.message):
                self.where[f"{Path(w.filename).name}:{w.lineno}"] += 1
        if self.report:
            Path(self.report).write_text(json.dumps({"steps": self.steps, "where": dict(self.where)}))

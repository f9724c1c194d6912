"""Epoch overhead of adversarial augmentation: wall time of training epochs with ``aug=fgsm``
(``regenerate`` and ``free``) divided by the same epochs with ``aug=none``, all on the same number
of samples per epoch (the clean set plus a pool of the same size; for ``none`` the pool is a copy
of the clean set, the same-steps control). Runs interleaved in one process; prints the ratios.

    python benchmarks/epoch_overhead.py --device cpu --num-images 16 --size 64 --epochs 4 --repeats 2
    python benchmarks/epoch_overhead.py --device cuda --num-images 256 --size 256 --batch 16 \
        --bf16 --channels-last --attack-batch 64      # GPU options

Two figures per kind, both medians over ``--repeats``:

* per epoch (the goal's measure): wall time from the start of one training epoch to the start of
  the next, which includes the epoch-end work (the regenerate attack for the next epoch, the free
  mode's publish) and the train-loader rebuild. Only the steady epochs 1 .. epochs-2 count: epoch 0
  pays first-call costs (kernel loading, allocator growth) and the last epoch makes no pool.
* whole fit: ``trainer.fit`` over ``--epochs`` epochs, Trainer setup and the first pool (made in
  ``on_fit_start``) included; on short GPU epochs these fixed costs weigh more than they would over
  a 30-epoch run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import lightning as L  # noqa: E402
import segmentation_models_pytorch as smp  # noqa: E402
import torch  # noqa: E402
from bench_common import device_name, product_log_every, sync  # noqa: E402

from advaug.callbacks import AdversarialAugmentation  # noqa: E402
from advaug.data import SegmentationDataModule  # noqa: E402
from advaug.data.synthetic import SyntheticPhantomGenerator  # noqa: E402
from advaug.models import SegmentationModule  # noqa: E402


def parse_args(argv=None, description: str | None = None, parents=()) -> argparse.Namespace:
    """The options shared with ``sync_count.py`` / ``profile_epoch.py``, which pass their own
    ``description`` (their docstring, for ``--help``) and ``parents`` (their extra options)."""
    p = argparse.ArgumentParser(
        description=description or __doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=list(parents),
    )
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--num-images", type=int, default=16, help="clean training images")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--attack-batch", type=int, default=32)
    p.add_argument("--epochs", type=int, default=4, help="at least 3: epochs 1 .. epochs-2 are timed")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--bf16", action="store_true", help="bf16-mixed training and bf16 attack (GPU)")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument(
        "--on-device", action="store_true", help="dataset.on_device: batches gathered on the device"
    )
    p.add_argument(
        "--cudnn-benchmark",
        action="store_true",
        help="Trainer(benchmark=True): cuDNN times its kernels for each new shape and keeps the fastest",
    )
    p.add_argument(
        "--input-grad",
        action="store_true",
        help="also time `none` with the input gradient computed and dropped (free mode's backward "
        "without its hooks): splits free mode's overhead into backward and the rest",
    )
    return p.parse_args(argv)


class InputGradOnly(L.Callback):
    """The training backward also computes the batch image's gradient, which is then dropped:
    the backward part of free mode's cost, without its hooks, slots or epoch-end work."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        batch["image"].requires_grad_(True)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        batch["image"].requires_grad_(False)
        batch["image"].grad = None


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
        """Seconds of epochs 1 .. n-2 (see the module docstring)."""
        spans = [b - a for a, b in pairwise(self.marks)]
        return spans[1:-1]


def run(kind: str, root: Path, args, extra: tuple[L.Callback, ...] = ()) -> tuple[float, list[float]]:
    """Seconds of ``trainer.fit`` and of each steady epoch for ``kind`` in none | regenerate |
    free | input_grad; ``extra`` callbacks go last (after the clock)."""
    torch.manual_seed(0)
    net = smp.create_model("Unet", encoder_name="resnet18", encoder_weights=None, classes=2)
    module = SegmentationModule(
        net, 2, optimizer=lambda params: torch.optim.Adam(params, lr=1e-3), channels_last=args.channels_last
    )
    dm = SegmentationDataModule(
        root=str(root), image_size=args.size, batch_size=args.batch, on_device=args.on_device
    )
    dm.prepare_data()
    dm.setup("fit")
    dm.set_extra(*dm.train_images())  # same samples per epoch in every run
    callbacks: list[L.Callback] = [InputGradOnly()] if kind == "input_grad" else []
    if kind in ("regenerate", "free"):
        callbacks.append(
            AdversarialAugmentation(
                "fgsm",
                eps=0.1,
                mode=kind,
                attack_batch_size=args.attack_batch,
                precision="bf16" if args.bf16 else "fp32",
                figure_samples=0,
            )
        )
    clock = EpochClock(args.device)
    callbacks += [clock, *extra]
    trainer = L.Trainer(
        log_every_n_steps=product_log_every(),
        accelerator="gpu" if args.device.startswith("cuda") else "cpu",
        devices=1,
        precision="bf16-mixed" if args.bf16 else "32-true",
        max_epochs=args.epochs,
        callbacks=callbacks,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        reload_dataloaders_every_n_epochs=1,
        inference_mode=False,
        benchmark=args.cudnn_benchmark,  # set either way: the flag is global and outlives a run
        num_sanity_val_steps=0,
        limit_val_batches=0,
        default_root_dir=root.parent,  # inside main()'s temporary folder
    )
    sync(args.device)
    t0 = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    sync(args.device)
    return time.perf_counter() - t0, clock.steady_epochs()


def make_dataset(folder: Path, num_images: int, size: int) -> Path:
    """Synthetic phantoms in ``folder``: ``num_images`` in "train", one each in "val" and "test"."""
    root = SyntheticPhantomGenerator(num_images=num_images + 2, size=size, seed=0).ensure(folder / "syn")
    ids = sorted(p.stem for p in (root / "images").iterdir())
    splits = {"train": ids[:num_images], "val": [ids[-2]], "test": [ids[-1]]}
    (root / "splits.json").write_text(json.dumps(splits))
    return root


def main(argv=None) -> dict[str, float]:
    args = parse_args(argv)
    if args.epochs < 3:
        raise SystemExit("--epochs must be at least 3 (epochs 1 .. epochs-2 are timed)")
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = make_dataset(Path(tmp), args.num_images, args.size)
        kinds = ("none", "regenerate", "free") + (("input_grad",) if args.input_grad else ())
        run("none", root, argparse.Namespace(**{**vars(args), "epochs": 1}))  # warm-up
        fits: dict[str, list[float]] = {k: [] for k in kinds}
        epochs: dict[str, list[float]] = {k: [] for k in kinds}
        for _ in range(args.repeats):  # interleaved so background load hits all alike
            for kind in kinds:
                fit, steady = run(kind, root, args)
                fits[kind].append(fit)
                epochs[kind].extend(steady)
    fit = {k: statistics.median(v) for k, v in fits.items()}
    epoch = {k: statistics.median(v) for k, v in epochs.items()}
    device = device_name(args.device)
    print(
        f"device: {device}; {args.num_images} clean + {args.num_images} pool images {args.size}x{args.size}, "
        f"batch {args.batch}, {args.epochs} epochs, {args.repeats} repeats, on_device={args.on_device}, "
        f"cudnn.benchmark={args.cudnn_benchmark}"
    )
    for kind in kinds:
        spans = ", ".join(f"{v:.3f}" for v in epochs[kind])
        print(f"{kind:>10}: {epoch[kind]:7.3f} s/epoch (median of {spans}); whole fit {fit[kind]:7.2f} s")
    ratios = {f"{k}_ratio": epoch[k] / epoch["none"] for k in kinds[1:]}
    ratios |= {f"{k}_fit_ratio": fit[k] / fit["none"] for k in kinds[1:]}
    print(
        f"whole-fit ratios (setup and first pool included): regenerate {ratios['regenerate_fit_ratio']:.2f}, "
        f"free {ratios['free_fit_ratio']:.2f}"
    )
    print(f"ratio fgsm regenerate / none: {ratios['regenerate_ratio']:.2f}   (per epoch; goal <= 1.35)")
    print(f"ratio fgsm free / none:       {ratios['free_ratio']:.2f}   (per epoch; goal <= 1.05)")
    if args.input_grad:
        print(
            f"ratio input gradient only / none: {ratios['input_grad_ratio']:.2f}   (per epoch; free mode's "
            "backward share: the rest of its overhead is its hooks and epoch-end work)"
        )
    return ratios


if __name__ == "__main__":
    main()

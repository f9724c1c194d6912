"""Epoch overhead of adversarial augmentation: wall time of training epochs with ``aug=fgsm``
(``regenerate`` and ``free``) divided by the same epochs with ``aug=none``, all on the same number
of samples per epoch (the clean set plus a pool of the same size; for ``none`` the pool is a copy
of the clean set, the same-steps control). Runs interleaved in one process; prints the ratios.

    python benchmarks/epoch_overhead.py --device cpu --num-images 16 --size 64 --epochs 2 --repeats 2
    python benchmarks/epoch_overhead.py --device cuda --num-images 256 --size 256 --batch 16 \
        --bf16 --channels-last --attack-batch 64      # GPU options

Each timed unit is ``trainer.fit`` over ``--epochs`` epochs without validation; the regenerate
run makes one pool per epoch (the first in on_fit_start), the free run collects one per epoch.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import lightning as L  # noqa: E402
import segmentation_models_pytorch as smp  # noqa: E402
import torch  # noqa: E402

from advaug.callbacks import AdversarialAugmentation  # noqa: E402
from advaug.data import SegmentationDataModule  # noqa: E402
from advaug.data.synthetic import SyntheticPhantomGenerator  # noqa: E402
from advaug.models import SegmentationModule  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--num-images", type=int, default=16, help="clean training images")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--attack-batch", type=int, default=32)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--bf16", action="store_true", help="bf16-mixed training and bf16 attack (GPU)")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--threads", type=int, default=None)
    return p.parse_args(argv)


def run(kind: str, root: Path, args) -> float:
    """Seconds of ``trainer.fit`` for ``kind`` in none | regenerate | free."""
    torch.manual_seed(0)
    net = smp.create_model("Unet", encoder_name="resnet18", encoder_weights=None, classes=2)
    module = SegmentationModule(
        net, 2, optimizer=lambda params: torch.optim.Adam(params, lr=1e-3), channels_last=args.channels_last
    )
    dm = SegmentationDataModule(root=str(root), image_size=args.size, batch_size=args.batch)
    dm.prepare_data()
    dm.setup("fit")
    dm.set_extra(*dm.train_images())  # same samples per epoch in all three runs
    callbacks = []
    if kind != "none":
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
    trainer = L.Trainer(
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
        num_sanity_val_steps=0,
        limit_val_batches=0,
        default_root_dir=tempfile.mkdtemp(prefix="advaug-bench-"),
    )
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main(argv=None) -> dict[str, float]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    # splits: the whole set is "train" for the benchmark; val/test need one image each
    n = args.num_images + 2
    with tempfile.TemporaryDirectory() as tmp:
        root = SyntheticPhantomGenerator(num_images=n, size=args.size, seed=0).ensure(Path(tmp) / "syn")

        ids = sorted(p.stem for p in (root / "images").iterdir())
        (root / "splits.json").write_text(
            json.dumps({"train": ids[: args.num_images], "val": [ids[-2]], "test": [ids[-1]]})
        )
        kinds = ("none", "regenerate", "free")
        run("none", root, argparse.Namespace(**{**vars(args), "epochs": 1}))  # warm-up
        times: dict[str, list[float]] = {k: [] for k in kinds}
        for _ in range(args.repeats):  # interleaved so background load hits all alike
            for kind in kinds:
                times[kind].append(run(kind, root, args))
    med = {k: statistics.median(v) for k, v in times.items()}
    device = (
        torch.cuda.get_device_name()
        if args.device.startswith("cuda")
        else f"cpu ({torch.get_num_threads()} threads)"
    )
    print(
        f"device: {device}; {args.num_images} clean + {args.num_images} pool images {args.size}x{args.size}, "
        f"batch {args.batch}, {args.epochs} epochs, median of {args.repeats} repeats"
    )
    for kind in kinds:
        print(f"{kind:>10}: {med[kind] / args.epochs:7.2f} s/epoch")
    ratios = {f"{k}_ratio": med[k] / med["none"] for k in kinds[1:]}
    print(f"ratio fgsm regenerate / none: {ratios['regenerate_ratio']:.2f}   (goal <= 1.35)")
    print(f"ratio fgsm free / none:       {ratios['free_ratio']:.2f}   (goal <= 1.05)")
    return ratios


if __name__ == "__main__":
    main()

"""Host-side cost of one training step: our Lightning ``SegmentationModule`` vs a plain PyTorch
loop, on a network so small (one 1x1 convolution, 8x8 images) that the arithmetic is negligible
and what is left is Python: hooks, logging, optimizer plumbing. On a GPU at batch 16 a step of the
real UNet is ~10-20 ms of mostly host-bound kernel launches, so each 0.1 ms here is ~1 % there.
The Trainer logs every ``trainer.log_every_n_steps`` of conf/trainer (5) and has no progress bar
(as in sweeps). A CPU loss takes ``LossWatch``'s immediate path, so the host work a CUDA step adds
(a pinned copy of the loss, an event record and poll) is not in these figures.

    python benchmarks/step_overhead.py --steps 2000 --repeats 3
    python benchmarks/step_overhead.py --free 500       # also: free-mode FGSM's per-step hooks

Prints ms/step for both loops (best of the repeats, alternated) and their difference. ``--free N``
also times steady epochs of N steps (16x16 phantoms, batch 2, the same 1x1 net) through the
DataModule with and without ``aug.mode=free`` and prints the difference per step: the host cost of
free mode's hooks, which a host-bound GPU step pays in full.
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # epoch_overhead's helpers

import lightning as L  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from bench_common import product_log_every  # noqa: E402

from advaug.models.segmentation import SegmentationModule  # noqa: E402


def batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "image": torch.rand(2, 3, 8, 8, generator=g),
        "mask": (torch.rand(2, 8, 8, generator=g) > 0.5).long(),
    }


def plain(steps: int) -> float:
    torch.manual_seed(0)
    net, b = torch.nn.Conv2d(3, 2, 1), batch()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    start = time.perf_counter()
    for _ in range(steps):
        loss = F.cross_entropy(net(b["image"]), b["mask"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - start) / steps * 1e3


class _Clock(L.Callback):
    def on_train_start(self, trainer, pl_module) -> None:
        self.start = time.perf_counter()

    def on_train_end(self, trainer, pl_module) -> None:
        self.seconds = time.perf_counter() - self.start


def lightning(steps: int) -> float:
    torch.manual_seed(0)
    module = SegmentationModule(
        torch.nn.Conv2d(3, 2, 1), 2, optimizer=functools.partial(torch.optim.Adam, lr=1e-3)
    )
    clock = _Clock()
    trainer = L.Trainer(
        log_every_n_steps=product_log_every(),
        accelerator="cpu",
        max_steps=steps,
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=[clock],
    )
    loader = torch.utils.data.DataLoader([batch()] * steps, batch_size=None)
    trainer.fit(module, train_dataloaders=loader)
    return clock.seconds / steps * 1e3


def free_mode_ms(steps: int) -> dict[str, float]:
    """ms/step of steady epochs without and with free-mode FGSM (see the module docstring)."""
    from epoch_overhead import EpochClock, make_dataset

    from advaug.callbacks import AdversarialAugmentation
    from advaug.data import SegmentationDataModule

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = make_dataset(Path(tmp), steps, 16)  # + a pool of the same size, batch 2: `steps` steps
        for kind in ("none", "free"):
            torch.manual_seed(0)
            module = SegmentationModule(
                torch.nn.Conv2d(3, 2, 1), 2, optimizer=functools.partial(torch.optim.Adam, lr=1e-3)
            )
            dm = SegmentationDataModule(root=str(root), image_size=16, batch_size=2)
            dm.prepare_data()
            dm.setup("fit")
            dm.set_extra(*dm.train_images())
            callbacks = [EpochClock("cpu")]
            if kind == "free":
                free = AdversarialAugmentation("fgsm", mode="free", figure_samples=0, loss_stats_samples=0)
                callbacks.insert(0, free)
            trainer = L.Trainer(
        log_every_n_steps=product_log_every(),
                accelerator="cpu", max_epochs=4, logger=False, enable_checkpointing=False,
                enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                num_sanity_val_steps=0, reload_dataloaders_every_n_epochs=1, inference_mode=False,
                callbacks=callbacks,
            )  # fmt: skip
            trainer.fit(module, datamodule=dm)
            out[kind] = min(callbacks[-1].steady_epochs()) / steps * 1e3
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--free", type=int, default=0, metavar="STEPS", help="also time free mode's hooks")
    args = p.parse_args()
    torch.set_num_threads(1)
    a, b = [], []
    for _ in range(args.repeats):  # alternated, so background load hits both alike
        a.append(plain(args.steps))
        b.append(lightning(args.steps))
    print(f"torch {torch.__version__}, lightning {L.__version__}, {args.steps} steps, best of {args.repeats}")
    print(f"plain PyTorch loop : {min(a):.3f} ms/step  (runs: {', '.join(f'{v:.3f}' for v in a)})")
    print(f"Lightning module   : {min(b):.3f} ms/step  (runs: {', '.join(f'{v:.3f}' for v in b)})")
    print(f"host overhead of the Lightning loop: {min(b) - min(a):.3f} ms/step")
    if args.free:
        runs = [free_mode_ms(args.free) for _ in range(args.repeats)]
        none, free = min(r["none"] for r in runs), min(r["free"] for r in runs)
        print(
            f"epochs through the DataModule: none {none:.3f}, free mode {free:.3f} ms/step (best of {args.repeats})"
        )
        print(f"host cost of free mode's hooks: {free - none:.3f} ms/step")


if __name__ == "__main__":
    main()

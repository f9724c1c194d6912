"""Training throughput: our Lightning ``SegmentationModule`` vs a hand-written PyTorch loop, side by side.

Same network (same init), same in-memory batches on the same device, same optimizer and loss;
only the loop differs. Prints img/s and ms/step of both, their ratio (goal: Lightning >= 0.95x)
and the difference per step::

    python benchmarks/train_throughput.py --device cpu --size 64 --batch 8 --steps 20 --repeats 3
    python benchmarks/train_throughput.py --device cuda --size 128 --batch 16 --bf16 --channels-last \
        --steps 300 --repeats 3
    python benchmarks/train_throughput.py --device cuda --bf16 --channels-last --compile

``--net conv1x1`` trains one 1x1 convolution instead of the UNet: so little arithmetic that the
difference per step is the Lightning loop's host cost (hooks, logging, optimizer plumbing), which
a host-bound GPU step pays in full::

    python benchmarks/train_throughput.py --device cpu --net conv1x1 --size 8 --batch 2 \
        --steps 2000 --warmup 0 --distinct-batches 1 --threads 1 --repeats 3

The Trainer logs every ``trainer.log_every_n_steps`` of conf/trainer and has no progress bar (as
in sweeps). A CPU loss takes the immediate path of the NaN check, so the host work a CUDA step adds
(a pinned copy of the loss, an event record and poll) is not in CPU figures.
"""

from __future__ import annotations

import argparse
import time

import lightning as L
import torch
import torch.nn.functional as F
from common import NETS, bare_trainer, default_device, device_name, make_net, sync

from advaug.models.segmentation import SegmentationModule


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default=default_device())
    p.add_argument("--net", choices=NETS, default="unet")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=50, help="timed steps (after --warmup)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--distinct-batches", type=int, default=4)
    p.add_argument("--encoder", default="resnet18")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (both loops)")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true", help="torch.compile the network (both loops)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument(
        "--repeats", type=int, default=2, help="alternate the two loops this many times; best of each"
    )
    return p.parse_args(argv)


def make_batches(args: argparse.Namespace, device: torch.device) -> list[dict[str, torch.Tensor]]:
    """Kept on the device, as for small data sets: the benchmark measures the loop, not loading."""
    g = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(args.distinct_batches):
        image = torch.rand(args.batch, 3, args.size, args.size, generator=g)
        mask = (torch.rand(args.batch, args.size, args.size, generator=g) > 0.7).long()
        batches.append({"image": image.to(device), "mask": mask.to(device)})
    return batches


def plain_loop(args: argparse.Namespace, device: torch.device, batches: list) -> float:
    """The reference: forward, CE loss, backward, Adam step. Returns seconds of the timed steps."""
    net = make_net(args.net, args.encoder).to(device)
    if args.channels_last:
        net = net.to(memory_format=torch.channels_last)
    model = torch.compile(net) if args.compile else net
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    model.train()
    start = time.perf_counter()
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            sync(device)
            start = time.perf_counter()
        batch = batches[step % len(batches)]
        x = batch["image"]
        if args.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
            loss = F.cross_entropy(model(x), batch["mask"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync(device)
    return time.perf_counter() - start


class _Clock(L.Callback):
    """Starts the clock at the first step after warm-up, stops it when training ends."""

    def __init__(self, warmup: int, device: torch.device) -> None:
        self.warmup, self.device, self.start, self.seconds = warmup, device, None, 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.warmup and self.start is None:
            sync(self.device)
            self.start = time.perf_counter()

    def on_train_end(self, trainer, pl_module) -> None:
        sync(self.device)
        self.seconds = time.perf_counter() - self.start


def lightning_loop(args: argparse.Namespace, device: torch.device, batches: list) -> float:
    """Our module under a bare Trainer. Returns seconds of the timed steps."""
    import functools

    module = SegmentationModule(
        make_net(args.net, args.encoder),
        num_classes=2,
        optimizer=functools.partial(torch.optim.Adam, lr=1e-3),
        channels_last=args.channels_last,
    )
    if args.compile:
        module.net = torch.compile(module.net)
    clock = _Clock(args.warmup, device)
    steps = args.warmup + args.steps
    loader = [batches[i % len(batches)] for i in range(steps)]  # already batched, on the device
    trainer = bare_trainer(device, args.bf16, [clock], max_steps=steps, max_epochs=1)
    trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader(loader, batch_size=None))
    return clock.seconds


def main(argv=None) -> dict[str, float]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    batches = make_batches(args, device)
    plain, lit = [], []
    for _ in range(args.repeats):  # alternate, so drifting clocks / shared cores hit both alike
        plain.append(plain_loop(args, device, batches))
        lit.append(lightning_loop(args, device, batches))
    ips = {"plain": args.steps * args.batch / min(plain), "lightning": args.steps * args.batch / min(lit)}
    ms = {"plain": min(plain) / args.steps * 1e3, "lightning": min(lit) / args.steps * 1e3}
    print(
        f"device={device_name(device)} net={args.net} size={args.size} batch={args.batch} steps={args.steps} "
        f"bf16={args.bf16} channels_last={args.channels_last} compile={args.compile} torch={torch.__version__} "
        f"lightning={L.__version__}; best of {args.repeats}"
    )
    for name, label, runs in (("plain", "plain PyTorch loop", plain), ("lightning", "Lightning module", lit)):
        spread = ", ".join(f"{args.steps * args.batch / s:.1f}" for s in runs)
        print(f"{label:<19}: {ips[name]:8.1f} img/s  {ms[name]:7.3f} ms/step  (runs: {spread} img/s)")
    print(f"ratio Lightning / plain = {ips['lightning'] / ips['plain']:.3f}")
    print(f"host overhead of the Lightning loop: {ms['lightning'] - ms['plain']:.3f} ms/step")
    return {"ratio": ips["lightning"] / ips["plain"], "overhead_ms": ms["lightning"] - ms["plain"]}


if __name__ == "__main__":
    main()

"""Twin BatchNorm forward cost: a plain UNet vs the same net with twin BatchNorm layers, routed
with no adversarial row and with a mixed batch (rows at random places), per mode, timed side by
side in one run (interleaved repeats, the order rotated each repeat); prints ms per forward and
the ratios to plain of the medians and of the bests (the best is the steadier under background load).

    python benchmarks/twin_norm_forward.py --device cpu --batch 10 --size 64 --repeats 7
    python benchmarks/twin_norm_forward.py --device cuda --batch 16 --size 128 --bf16 --channels-last

The forwards run in train mode with autograd on, as a training step's does (--backward adds the
backward); the routed ones sort a mixed batch clean-first at the net's input and back at its output.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
from collections.abc import Callable

import torch
from common import (  # first: puts this checkout's src/ on sys.path
    apply_threads,
    device_name,
    ratio_table,
    time_cases,
    timing_parser,
)

from advaug.models.twin_norm import add_twin_norms, routed
from advaug.rules import AUX_NORMS


def parse_args(argv=None) -> argparse.Namespace:
    p = timing_parser(__doc__, batch=10, repeats=7)
    p.add_argument(
        "--adversarial", type=float, default=0.2, help="share of adversarial rows in the mixed batch"
    )
    p.add_argument("--modes", default="stats,affine", help="comma-separated twin modes to time")
    p.add_argument("--arch", default="Unet")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast")
    p.add_argument("--channels-last", action="store_true", help="channels_last nets and input")
    p.add_argument("--backward", action="store_true", help="time forward + backward")
    args = p.parse_args(argv)
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not args.modes or any(m not in AUX_NORMS[1:] for m in args.modes):
        p.error(f"--modes: choose from {', '.join(AUX_NORMS[1:])}")
    n_adv = round(args.adversarial * args.batch)
    if not 0 < n_adv < args.batch:
        p.error(f"--adversarial {args.adversarial} of --batch {args.batch} is not a mixed batch")
    return args


def main(argv=None) -> dict[str, float]:
    args = parse_args(argv)
    apply_threads(args)
    import segmentation_models_pytorch as smp

    torch.manual_seed(0)
    layout = torch.channels_last if args.channels_last else torch.contiguous_format
    plain = smp.create_model(args.arch, encoder_name=args.encoder, encoder_weights=None, classes=2)
    plain = plain.to(args.device, memory_format=layout).train()
    nets = {mode: add_twin_norms(copy.deepcopy(plain), mode) for mode in args.modes}
    x = torch.rand(args.batch, 3, args.size, args.size, device=args.device).contiguous(memory_format=layout)
    n_adv = round(args.adversarial * args.batch)
    mixed = torch.zeros(args.batch, dtype=torch.bool)
    mixed[torch.randperm(args.batch, generator=torch.Generator().manual_seed(0))[:n_adv]] = True
    clean = torch.zeros(args.batch, dtype=torch.bool)

    def step(net: torch.nn.Module, mask: torch.Tensor | None) -> Callable[[], None]:
        def run() -> None:
            amp = torch.autocast(torch.device(args.device).type, torch.bfloat16, enabled=args.bf16)
            route = contextlib.nullcontext() if mask is None else routed(net, mask)
            with amp, route:
                out = net(x)
            if args.backward:
                out.float().square().mean().backward()
                net.zero_grad(set_to_none=True)

        return run

    cases = {"plain": step(plain, None)}
    for mode, net in nets.items():
        cases[f"{mode}, all clean"] = step(net, clean)
        cases[f"{mode}, mixed"] = step(net, mixed)
    times = time_cases(cases, args.device, args.repeats)
    what = "forward + backward" if args.backward else "forward"
    options = "".join([", bf16"] * args.bf16 + [", channels_last"] * args.channels_last)
    print(
        f"device: {device_name(args.device)}; model {args.arch}/{args.encoder}; batch {args.batch} at "
        f"{args.size}x{args.size}{options}; train-mode {what}; mixed = {n_adv} adversarial rows at random "
        f"places; {args.repeats} repeats"
    )
    return ratio_table(times, "plain")


if __name__ == "__main__":
    main()

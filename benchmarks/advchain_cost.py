"""AdvChain's cost per attacked image against one FGSM attack on the same batch and model: FGSM
(one forward + backward), the whole chain at n_iter 0 (random transforms) and 1 (the default),
its photometric and geometric parts, and the consistency term of a training step, timed side by
side in one run (interleaved repeats, the order rotated each repeat); prints ms per image and the
ratios to FGSM of the medians and of the bests (the best is the steadier under background load).

    python benchmarks/advchain_cost.py --device cpu --batch 8 --size 64 --repeats 5
    python benchmarks/advchain_cost.py --device cuda --batch 32 --size 128 --repeats 10
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from common import (  # first: puts this checkout's src/ on sys.path
    apply_threads,
    device_name,
    make_net,
    ratio_table,
    time_cases,
    timing_parser,
)

from advaug.advchain import ChainBudgets, ChainConsistency, ChainObjective, optimise_chain
from advaug.attacks import perturb


def parse_args(argv=None) -> argparse.Namespace:
    return timing_parser(__doc__, batch=8, repeats=5).parse_args(argv)


def main(argv=None) -> dict[str, float]:
    args = parse_args(argv)
    apply_threads(args)
    net = make_net("unet", args.encoder).to(args.device).eval()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch, 3, args.size, args.size, generator=g).to(args.device)
    y = (torch.rand(args.batch, args.size, args.size, generator=g) > 0.8).long().to(args.device)
    objective = ChainObjective()
    chains = {
        "advchain n_iter 0": (ChainBudgets(), ChainObjective(n_iter=0)),
        "advchain n_iter 1": (ChainBudgets(), objective),
        "photometric": (ChainBudgets(transforms=("noise", "bias")), objective),
        "geometric": (ChainBudgets(transforms=("elastic", "affine")), objective),
    }

    def chain(budgets: ChainBudgets, obj: ChainObjective) -> Callable[[], None]:
        # measure=False: what the pool producer needs beyond this is one forward for its log
        return lambda: optimise_chain(
            net, x, budgets, obj, generator=torch.Generator().manual_seed(1), measure=False
        )

    term = ChainConsistency(ChainBudgets(), objective)

    def consistency() -> None:  # the extra cost of a training step: the term and its backward
        net.train()
        with torch.no_grad():
            logits = net(x)
        term(net, net, x, logits).backward()
        net.zero_grad(set_to_none=True)
        net.eval()

    cases = {"fgsm": lambda: perturb(net, x, y, 0.03, "fgsm")}
    cases.update({name: chain(*c) for name, c in chains.items()})
    cases["consistency term"] = consistency
    times = time_cases(cases, args.device, args.repeats)
    print(
        f"device: {device_name(args.device)}; UNet/{args.encoder}; batch {args.batch} at {args.size}x{args.size}; "
        f"{args.repeats} repeats"
    )
    return ratio_table(times, "fgsm", per=args.batch, unit="ms_per_image")


if __name__ == "__main__":
    main()

"""``ChainConsistency``: AdvChain as a loss term of the training step (``aug.consistency_weight``):
optimise a chain against the current model for the batch, then ``weight`` x the divergence
between the clean prediction (moved by the chain's geometry, taken as constant) and the
prediction on the transformed batch, with gradients to the weights. No mask is read, so it
could run on unlabelled images as well.

As in AdvChain, the network stays in its training mode throughout (BatchNorm on the batch's
statistics) but no forward of the term moves the running statistics."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from advaug.advchain.budgets import ChainBudgets
from advaug.advchain.optimise import ChainObjective, divergence_of, optimise_chain, statistics_frozen
from advaug.rules import check_budget


class ChainConsistency:
    """``weight`` x the adversarial chain's consistency divergence (0: off)."""

    def __init__(self, budgets: ChainBudgets, objective: ChainObjective, weight: float = 1.0) -> None:
        self.budgets, self.objective = budgets, objective
        self.weight = check_budget(weight, "aug.consistency_weight", "the consistency loss")

    @property
    def active(self) -> bool:
        return self.weight > 0

    def __call__(
        self, model: nn.Module, forward: Callable[[Tensor], Tensor], images: Tensor, clean_logits: Tensor
    ) -> Tensor:
        """The weighted term for ``images`` whose clean prediction was ``clean_logits``;
        ``forward`` calls ``model`` (e.g. routed through its twin normalisation layers)."""
        reference = clean_logits.detach().float().softmax(1)
        result = optimise_chain(
            model, images, self.budgets, self.objective, reference=reference, forward=forward,
            use_eval_mode=False, measure=False,
        )  # fmt: skip
        with statistics_frozen(model):
            score = divergence_of(forward, reference, result.transformed, self.objective)
        return self.weight * score.mean()

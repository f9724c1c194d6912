"""AdvChain (Chen et al., MICCAI 2020 / Medical Image Analysis 2022): a chain of realistic,
differentiable transforms (noise, bias field, elastic deformation, affine) whose parameters are
optimised against a label-free consistency objective. Pure functions per concept:
``budgets`` (parameters and their projection), ``photometric`` and ``geometric`` (the
transforms), ``chain`` (applying them), ``divergence`` (the objective), ``optimise`` (the
attack), ``consistency`` (the training loss term); the pool producer is
:class:`advaug.callbacks.advchain_pool.AdvChainPool`."""

from advaug.advchain.budgets import ChainBudgets, project, random_parameters, zero_parameters
from advaug.advchain.chain import Transformed, apply_chain
from advaug.advchain.consistency import ChainConsistency
from advaug.advchain.divergence import prediction_divergence
from advaug.advchain.optimise import ChainObjective, ChainResult, optimise_chain

__all__ = [
    "ChainBudgets",
    "ChainConsistency",
    "ChainObjective",
    "ChainResult",
    "Transformed",
    "apply_chain",
    "optimise_chain",
    "prediction_divergence",
    "project",
    "random_parameters",
    "zero_parameters",
]

"""advaug/advchain/consistency.py: the label-free loss term of a training step: images only,
a gradient to the weights, no BatchNorm statistic moved, weight 0 off."""

import pytest
import torch
from advchain_helpers import tiny_net

from advaug.advchain import ChainBudgets, ChainConsistency, ChainObjective
from advaug.errors import ConfigError


def test_the_term_uses_images_only_trains_the_weights_and_keeps_the_statistics():
    net = tiny_net().train()
    x = torch.rand(4, 3, 16, 16)
    stats = {k: v.clone() for k, v in net.state_dict().items()}
    logits = net(x)  # the training step's clean forward moved the statistics once
    stats_after_clean = {k: v.clone() for k, v in net.state_dict().items()}
    assert any(not torch.equal(stats[k], v) for k, v in stats_after_clean.items())
    term = ChainConsistency(ChainBudgets(), ChainObjective(), weight=2.0)(net, net, x, logits)
    assert term.ndim == 0 and term.item() > 0
    (term + logits.mean()).backward()  # the clean forward's saved statistics are intact
    assert net[0].weight.grad is not None and net[0].weight.grad.abs().sum() > 0
    assert all(torch.equal(v, stats_after_clean[k]) for k, v in net.state_dict().items())


def test_weight_zero_is_inactive_and_a_negative_weight_refused():
    assert not ChainConsistency(ChainBudgets(), ChainObjective(), weight=0).active
    with pytest.raises(ConfigError, match=r"aug\.consistency_weight"):
        ChainConsistency(ChainBudgets(), ChainObjective(), weight=-1)

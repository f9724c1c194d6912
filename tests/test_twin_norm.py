"""Twin BatchNorm (AdvProp): which rows reach which statistics, plain BatchNorm outside ``routed``,
the affine parameters of each mode and their gradients, state_dict keys, and the refusals."""

import copy

import pytest
import segmentation_models_pytorch as smp
import torch
from torch import nn

from advaug import rules
from advaug.errors import ConfigError
from advaug.models.twin_norm import TwinBatchNorm2d, add_twin_norms, main_only, routed, twin_layers

MODES = ("stats", "affine")
# rows 1 and 4 adversarial: not clean-first, so routed sorts the rows; two of them, because the
# UNet's deepest features are 1x1 at 32x32 and a training BatchNorm needs more than one value
MASK = torch.tensor([False, True, False, False, True, False])


def unet() -> nn.Module:
    torch.manual_seed(0)
    return smp.Unet(
        "resnet18", encoder_weights=None, in_channels=3, classes=2, decoder_channels=(32, 16, 16, 8, 8)
    )


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1),
        nn.BatchNorm2d(4),
    )


def images(n: int = 6, size: int = 32, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def stats(layer: nn.BatchNorm2d) -> list[torch.Tensor]:
    return [b.clone() for b in (layer.running_mean, layer.running_var, layer.num_batches_tracked)]


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def twin_as_plain(net: nn.Module) -> nn.Module:
    """The plain net the twin rows go through: main_only with the twin's statistics (and affine)."""
    swapped = copy.deepcopy(net)
    for layer in twin_layers(swapped):
        for name, value in list(layer.aux.named_parameters()) + list(layer.aux.named_buffers()):
            getattr(layer, name).data.copy_(value)
    return main_only(swapped)


# -- the rule -----------------------------------------------------------------------------------


def test_aux_norm_choices_have_one_spelling():
    assert rules.AUX_NORMS == ("none", "stats", "affine")
    for value in rules.AUX_NORMS:
        assert rules.check_aux_norm(value) == value
    for bad in ("Stats", "both", "", None):
        with pytest.raises(
            ConfigError, match=rf"^model\.aux_norm={bad!r}: choose one of none, stats, affine"
        ):
            rules.check_aux_norm(bad)
    with pytest.raises(ConfigError, match=r"^aux_norm='x': choose one of none, stats, affine"):
        rules.check_aux_norm("x", "aux_norm")


# -- statistics ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_twin_statistics_move_only_for_adversarial_rows(mode):
    net = add_twin_norms(small_net(), mode).train()
    layers = twin_layers(net)
    assert len(layers) == 2
    x = images(4)
    main0, aux0 = [stats(t) for t in layers], [stats(t.aux) for t in layers]
    with routed(net, torch.zeros(4, dtype=torch.bool)):
        net(x)
    assert all(not same(stats(t), m) for t, m in zip(layers, main0, strict=True))
    assert all(same(stats(t.aux), a) for t, a in zip(layers, aux0, strict=True))
    main1 = [stats(t) for t in layers]
    with routed(net, torch.ones(4, dtype=torch.bool)):
        net(x)
    assert all(same(stats(t), m) for t, m in zip(layers, main1, strict=True))  # all adversarial
    assert all(not same(stats(t.aux), a) for t, a in zip(layers, aux0, strict=True))


@pytest.mark.parametrize("mode", MODES)
def test_a_mixed_batch_updates_each_side_from_its_own_rows(mode):
    net = add_twin_norms(small_net(), mode).train()
    x, mask = images(), MASK
    main_ref, aux_ref = main_only(net), twin_as_plain(net)  # the same nets, before the batch
    with routed(net, mask):
        net(x)
    main_ref(x[~mask]), aux_ref(x[mask])
    for layer, m, a in zip(twin_layers(net), main_ref[1::3], aux_ref[1::3], strict=True):
        torch.testing.assert_close(stats(layer), stats(m))
        torch.testing.assert_close(stats(layer.aux), stats(a))


# -- plain outside routed -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_outside_routed_every_layer_is_plain_batch_norm_bit_for_bit(mode):
    plain, net = unet(), add_twin_norms(unet(), mode)
    x = images()
    plain.train(), net.train()
    assert torch.equal(plain(x), net(x))  # train mode, outside routed: the same output and statistics
    assert torch.equal(
        plain.state_dict()["encoder.bn1.running_mean"], net.state_dict()["encoder.bn1.running_mean"]
    )
    with routed(net, MASK):  # the twins learn something, the main layers see the clean rows
        net(x)
    net.eval()
    exported = main_only(net)
    assert not twin_layers(exported) and twin_layers(net)
    assert all(type(m) is nn.BatchNorm2d for m in exported.modules() if isinstance(m, nn.BatchNorm2d))
    out = net(x)
    with routed(net, None):
        assert torch.equal(net(x), out)
    assert torch.equal(exported(x), out)
    fresh = unet().eval()  # an untouched plain model given the main weights
    fresh.load_state_dict(exported.state_dict())
    assert torch.equal(fresh(x), out)
    with routed(fresh, MASK):  # a net without twin layers: routed changes nothing
        assert torch.equal(fresh(x), out)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("channels_last", [False, True])
def test_a_mixed_batch_normalises_each_row_with_its_own_side(mode, channels_last):
    net = add_twin_norms(unet(), mode).train()
    with torch.no_grad():  # a twin unlike the main layer, so that a wrong route shows
        for layer in twin_layers(net):
            if layer.aux.affine:
                layer.aux.weight.mul_(1.5), layer.aux.bias.add_(0.25)
    x = images()
    main_ref, aux_ref = main_only(net), twin_as_plain(net)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    with routed(net, MASK):
        out = net(x)
    assert out.shape == (6, 2, 32, 32)
    torch.testing.assert_close(out[~MASK], main_ref(x[~MASK]), atol=2e-4, rtol=1e-4)
    torch.testing.assert_close(out[MASK], aux_ref(x[MASK]), atol=2e-4, rtol=1e-4)
    with routed(net, torch.tensor([False, False, False, False, True, True])):  # clean first: no sort
        out = net(x)
    torch.testing.assert_close(out[4:], twin_as_plain(net)(x[4:]), atol=2e-4, rtol=1e-4)
    assert not net._forward_hooks and not net._forward_pre_hooks


def test_a_mixed_layer_matches_batch_norm_on_its_rows_alone():
    net = add_twin_norms(nn.Sequential(nn.BatchNorm2d(4)), "affine").train()
    twin = net[0]
    with torch.no_grad():
        twin.aux.weight.copy_(torch.tensor([2.0, 0.5, 1.0, 3.0])), twin.aux.bias.fill_(-1.0)
    x = torch.randn(6, 4, 5, 5) * 3 + 2
    main_bn, aux_bn = nn.BatchNorm2d(4).train(), nn.BatchNorm2d(4).train()
    aux_bn.load_state_dict(twin.aux.state_dict())
    with routed(net, MASK):
        out = net(x)
    torch.testing.assert_close(out[~MASK], main_bn(x[~MASK]))
    torch.testing.assert_close(out[MASK], aux_bn(x[MASK]))
    torch.testing.assert_close(stats(twin), stats(main_bn))
    torch.testing.assert_close(stats(twin.aux), stats(aux_bn))


def test_routed_under_bf16_autocast():
    net = add_twin_norms(unet(), "affine").train()
    x = images()
    with torch.no_grad():
        fp32 = twin_as_plain(net)(x[MASK])
        with torch.autocast("cpu", dtype=torch.bfloat16):
            main_ref, aux_ref = main_only(net)(x[~MASK]), twin_as_plain(net)(x[MASK])
            with routed(net, MASK):
                out = net(x)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    torch.testing.assert_close(out[~MASK], main_ref)  # bf16 tolerances
    torch.testing.assert_close(out[MASK], aux_ref)
    assert (out[MASK].float() - fp32).norm() < 0.15 * fp32.norm()  # bf16 through a random UNet: ~7 %


# -- affine parameters and gradients ---------------------------------------------------------------


def test_stats_mode_shares_the_affine_parameters():
    plain, net = unet(), add_twin_norms(unet(), "stats")
    assert [n for n, _ in net.named_parameters()] == [n for n, _ in plain.named_parameters()]
    assert all(layer.aux.weight is None and layer.aux.bias is None for layer in twin_layers(net))
    layer = twin_layers(net)[0]
    assert layer.aux_affine() == (layer.weight, layer.bias)
    with routed(net.train(), torch.ones(6, dtype=torch.bool)):
        net(images()).sum().backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0  # used by the twin


def test_affine_mode_gradients_reach_the_twin_only_from_adversarial_rows():
    net = add_twin_norms(unet(), "affine").train()
    layers = twin_layers(net)
    for layer in layers:
        assert isinstance(layer.aux.weight, nn.Parameter) and layer.aux.weight is not layer.weight
        assert torch.equal(layer.aux.weight, layer.weight) and torch.equal(layer.aux.bias, layer.bias)
    x = images()

    def grads(mask: torch.Tensor, rows: torch.Tensor) -> list[torch.Tensor]:
        net.zero_grad(set_to_none=True)
        with routed(net, mask):
            net(x)[rows].pow(2).mean().backward()
        assert all(p.grad is not None for p in net.parameters())  # DDP: every parameter takes part
        return [g for layer in layers for g in (layer.aux.weight.grad, layer.aux.bias.grad)]

    assert all(g.count_nonzero() == 0 for g in grads(MASK, ~MASK))  # clean rows only in the loss
    assert any(g.count_nonzero() > 0 for g in grads(MASK, MASK))
    assert all(g.count_nonzero() == 0 for g in grads(torch.zeros(6, dtype=torch.bool), slice(None)))
    grads(torch.ones(6, dtype=torch.bool), slice(None))
    assert all(layer.weight.grad.count_nonzero() == 0 for layer in layers)  # main affine unused: zero


# -- state_dict, copies ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_state_dict_keeps_the_main_keys_and_round_trips(mode):
    plain = unet()
    bn1 = plain.encoder.bn1
    net = add_twin_norms(plain, mode)
    assert net is plain and net.encoder.bn1.weight is bn1.weight  # in place, the same tensors
    plain_keys, keys = set(unet().state_dict()), set(net.state_dict())
    assert plain_keys <= keys and all(".aux." in k for k in keys - plain_keys)
    assert "encoder.bn1.aux.running_mean" in keys
    assert ("encoder.bn1.aux.weight" in keys) == (mode == "affine")
    x = images()
    with routed(net.train(), MASK):
        net(x)
    fresh = add_twin_norms(
        smp.Unet("resnet18", encoder_weights=None, classes=2, decoder_channels=(32, 16, 16, 8, 8)), mode
    )
    fresh.load_state_dict(net.state_dict())
    net.eval(), fresh.eval()
    assert torch.equal(fresh(x), net(x))
    with routed(net, MASK), routed(fresh, MASK):
        assert torch.equal(fresh(x), net(x))


def odd_norms() -> nn.Module:
    """BatchNorm2d without bias (where torch has the switch), without affine, without running
    statistics, and with a cumulative average (momentum None)."""
    torch.manual_seed(0)
    try:
        no_bias = nn.BatchNorm2d(4, bias=False)
    except TypeError:  # torch before 2.14
        no_bias = nn.BatchNorm2d(4)
    return nn.Sequential(
        nn.Conv2d(3, 4, 1),
        no_bias,
        nn.BatchNorm2d(4, affine=False),
        nn.BatchNorm2d(4, track_running_stats=False),
        nn.BatchNorm2d(4, momentum=None),
    )


@pytest.mark.parametrize("mode", MODES)
def test_every_batch_norm_setting_keeps_its_keys_and_behaviour(mode):
    plain, net = odd_norms().train(), add_twin_norms(odd_norms(), mode).train()
    assert set(plain.state_dict()) <= set(net.state_dict())
    for p_layer, layer in zip(plain[1:], net[1:], strict=True):
        assert [n for n, _ in p_layer.named_parameters()] == [
            n for n, _ in layer.named_parameters(recurse=False)
        ]
    x = images(4, 8)
    assert torch.equal(plain(x), net(x))
    for mask in (torch.tensor([True, False, True, False]), torch.zeros(4, dtype=torch.bool)):
        net.zero_grad(set_to_none=True)
        with routed(net, mask):
            net(x).sum().backward()
        assert all(p.grad is not None for p in net.parameters())
    assert int(net[4].num_batches_tracked) == 3 and int(net[4].aux.num_batches_tracked) == 1
    plain_again = main_only(net).eval()
    assert set(plain_again.state_dict()) == set(plain.state_dict())
    assert torch.equal(plain_again(x), net.eval()(x))


def test_a_deep_copy_shares_its_own_route():
    net = add_twin_norms(small_net(), "stats")
    twin = copy.deepcopy(net)
    routes = {id(layer.route) for layer in twin_layers(twin)}
    assert len(routes) == 1 and routes.isdisjoint(id(layer.route) for layer in twin_layers(net))
    with routed(twin, MASK):
        assert twin_layers(twin)[0].route.split is not None and twin_layers(net)[0].route.split is None


def test_routed_restores_the_routing_on_error():
    net = add_twin_norms(small_net(), "stats").train()
    with pytest.raises(ValueError, match="the aux mask has 6 entries but the batch has 4"), routed(net, MASK):
        net(images(4))
    assert twin_layers(net)[0].route.split is None and not net._forward_pre_hooks
    with pytest.raises(ValueError, match="aux_mask must be a bool tensor of shape"), routed(net, MASK.long()):
        pass
    outer = nn.Sequential(net)  # routed on outer, but the forward called is the inner net's
    with pytest.raises(RuntimeError, match=r"call net itself inside"), routed(outer, MASK):
        net(images())
    assert not twin_layers(net)[0].route.sorted
    with routed(outer, MASK):  # inner modules reached through outer's forward: sorted
        outer(images())


# -- refusals ------------------------------------------------------------------------------------


def test_refusals_name_the_key():
    with pytest.raises(ConfigError, match=r"^model\.aux_norm='both': choose one of none, stats, affine"):
        add_twin_norms(small_net(), "both")
    conv = nn.Conv2d(3, 2, 1)
    assert add_twin_norms(conv, "none") is conv
    with pytest.raises(ConfigError, match=r"^model\.aux_norm='stats': the network has no BatchNorm2d layer"):
        add_twin_norms(conv, "stats")
    with pytest.raises(ConfigError, match=r"^model\.aux_norm='affine': the network has SyncBatchNorm layers"):
        add_twin_norms(nn.Sequential(nn.Conv2d(3, 4, 1), nn.SyncBatchNorm(4), nn.BatchNorm2d(4)), "affine")
    with pytest.raises(
        ConfigError, match=r"^model\.aux_norm='stats': the network already has twin BatchNorm"
    ):
        add_twin_norms(add_twin_norms(small_net(), "stats"), "stats")
    with pytest.raises(ConfigError, match=r"^model\.aux_norm='none' has no twin layer"):
        TwinBatchNorm2d(4, mode="none")

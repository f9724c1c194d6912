import pytest
import torch
from torch import nn

from advaug.models.twin_routing import AuxRoute, make_split, sorted_rows


def test_make_split_kinds_and_the_sort_that_puts_clean_rows_first():
    assert make_split(torch.tensor([False, False])).kind == "main"
    assert make_split(torch.tensor([True, True])).kind == "aux"
    ordered = make_split(torch.tensor([False, False, True]))
    assert (ordered.kind, ordered.n_main, ordered.perm) == ("mixed", 2, None)
    split = make_split(torch.tensor([True, False, True, False]))
    assert (split.kind, split.size, split.n_main) == ("mixed", 4, 2)
    assert split.perm.tolist() == [1, 3, 0, 2]
    assert split.perm[split.inverse].tolist() == [0, 1, 2, 3]


def test_make_split_rejects_a_mask_that_is_not_a_bool_vector():
    with pytest.raises(ValueError, match="bool tensor of shape"):
        make_split(torch.tensor([0, 1]))


def test_sorted_rows_sorts_the_input_and_restores_the_output_order():
    seen = []

    class Record(nn.Module):
        def forward(self, x, extra):
            seen.append((x.clone(), extra["y"].clone(), route.sorted))
            return x * 10

    route, net = AuxRoute(), Record()
    split = make_split(torch.tensor([True, False, True, False]))
    x = torch.arange(4.0)
    with sorted_rows(net, split, [route]):
        out = net(x, extra={"y": torch.arange(4)})
    assert seen[0][0].tolist() == [1.0, 3.0, 0.0, 2.0]
    assert seen[0][1].tolist() == [1, 3, 0, 2]
    assert seen[0][2] is True
    assert out.tolist() == [0.0, 10.0, 20.0, 30.0]
    assert route.sorted is False
    assert net(x, extra={"y": torch.arange(4)}).tolist() == [0.0, 10.0, 20.0, 30.0]  # hooks removed
    assert seen[1][0].tolist() == [0.0, 1.0, 2.0, 3.0]

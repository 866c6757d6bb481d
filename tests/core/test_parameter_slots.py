"""`ParameterSlots`: the module sees the swapped tensors (tied copies too) and gets its own back."""

import pytest
import torch
from torch import nn

from neuralct.gradients._swap import ParameterSlots


def tied() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 3), nn.Tanh(), nn.Linear(3, 3))
    net[2].weight = net[0].weight
    return net


def test_swapped_call_equals_functional_call_with_tied_weights():
    net, x = tied(), torch.randn(5, 3)
    names = [name for name, _ in net.named_parameters()]
    replacements = [torch.randn_like(p) for p in net.parameters()]
    slots = ParameterSlots(net, names)
    with slots.swapped(replacements):
        ours = net(x)
    expected = torch.func.functional_call(net, dict(zip(names, replacements)), (x,))
    assert torch.equal(ours, expected)
    # A bug that swapped only the first place of a tied weight would differ here.
    assert not torch.equal(ours, net(x))


def test_parameters_come_back_after_an_error():
    net = tied()
    originals = list(net.parameters())
    slots = ParameterSlots(net, [name for name, _ in net.named_parameters()])
    with pytest.raises(RuntimeError, match="boom"), slots.swapped([torch.zeros_like(p) for p in originals]):
        raise RuntimeError("boom")
    assert all(a is b for a, b in zip(net.parameters(), originals))
    assert net[2].weight is net[0].weight

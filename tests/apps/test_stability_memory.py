"""Memory profiles of linear SSM layers: impulse responses and their decay."""

from __future__ import annotations

import math

import pytest
import torch

from neuralct.errors import InvalidInputError
from neuralct.models.ssm.hope import HOPE
from neuralct.models.ssm.lssl import LSSL
from neuralct.models.ssm.s4d import S4D
from neuralct.stability.memory import memory_profile


def test_a_diagonal_ssm_decays_at_its_modes_rate(float64) -> None:
    layer = S4D(3, 2)  # one complex mode per channel: |k_j| <= C e^{-alpha dt j}
    steps = torch.tensor([0.01, 0.05, 0.1])
    with torch.no_grad():
        layer.log_decay.fill_(math.log(0.5))
        layer.log_dt.copy_(steps.log())
    profile = memory_profile(layer, 2000)
    torch.testing.assert_close(profile.decay_rate(), 0.5 * steps, rtol=1e-3, atol=0)
    # energy e^{-2 alpha dt j}: 99% lies within log(100) / (2 alpha dt) lags, up to the oscillation
    expected = math.log(100) / (2 * 0.5 * steps)
    assert ((profile.memory_length().double() / expected - 1).abs() < 0.1).all()


def test_hope_remembers_at_most_its_markov_parameters_over_the_step(float64) -> None:
    layer = HOPE(4, 32)
    for step in (1.0, 0.25):
        with torch.no_grad():
            layer.log_dt.fill_(math.log(step))
        profile = memory_profile(layer, 512)
        assert (profile.memory_length(0.999) <= math.ceil(32 / step) + 1).all()


def test_legt_remembers_its_window_and_legs_decays_slower(float64) -> None:
    legt, legs = (memory_profile(LSSL(4, 32, a=a, dt_min=0.01, dt_max=0.01), 1000) for a in ("legt", "legs"))
    window = 1 / 0.01  # LegT's window is one time unit: 100 steps
    assert ((legt.memory_length(0.99).double() / window - 1).abs() < 0.15).all()
    assert (legs.memory_length(0.99) > 1.5 * legt.memory_length(0.99)).all()
    assert (legt.decay_rate(150, 1000) > 5 * legs.decay_rate(150, 1000)).all()


def test_bad_input_is_named() -> None:
    with pytest.raises(InvalidInputError, match="kernel\\(length\\) method"):
        memory_profile(torch.nn.Linear(2, 2), 10)
    with pytest.raises(InvalidInputError, match="`length`"):
        memory_profile(S4D(2, 2), 1)
    with pytest.raises(InvalidInputError, match="`fraction`"):
        memory_profile(S4D(2, 2), 10).memory_length(0.0)

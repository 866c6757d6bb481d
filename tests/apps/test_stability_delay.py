"""The linearisation of a delay field (`neuralct.stability.delay`) against closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import neuralct as nct
from neuralct.errors import InvalidInputError
from neuralct.stability.delay import delay_linearisation


def test_a_linear_delay_field_gives_its_matrices_spectra_and_halanay_bound() -> None:
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(3, 3, dtype=torch.float64, generator=generator)
    b = torch.randn(2, 3, 3, dtype=torch.float64, generator=generator)
    term = nct.DelayTerm(
        lambda t, y, yd, args: y @ a.T + torch.einsum("nij,bnj->bi", b, yd),
        delays=[0.5, 1.25],
        history=torch.zeros(2, 3, dtype=torch.float64),
    )
    times = torch.linspace(0.0, 3.0, 7, dtype=torch.float64).expand(2, 7)
    states = torch.randn(2, 7, 3, dtype=torch.float64, generator=generator)
    linear = delay_linearisation(term, times, states)
    expected = sorted(np.linalg.eigvals(a.numpy()), key=lambda z: -z.real)
    np.testing.assert_allclose(linear.instantaneous.eigenvalues[1, 4].numpy(), expected, atol=1e-12)
    norms = [np.linalg.norm(b[i].numpy(), 2) for i in range(2)]
    np.testing.assert_allclose(linear.delayed_norms.numpy(), np.broadcast_to(norms, (2, 7, 2)), rtol=1e-12)
    mu = np.linalg.eigvalsh((a + a.T).numpy() / 2).max()
    np.testing.assert_allclose(linear.halanay().numpy(), mu + sum(norms), rtol=1e-12)


def test_the_delayed_state_is_read_from_the_trajectory_and_from_the_history_before_it() -> None:
    # f = y(t - 1.5)^2 / 2 has df/dy(t - tau) = diag(y(t - tau)): its norm is |y(t - tau)|.
    history = torch.full((1, 1), 7.0, dtype=torch.float64)
    term = nct.DelayTerm(lambda t, y, yd, args: yd[:, 0] ** 2 / 2, delays=[1.5], history=history)
    times = torch.arange(5, dtype=torch.float64)[None]  # 0, 1, 2, 3, 4
    states = (2 * times + 1)[..., None]  # y(t) = 2t + 1, exact under linear interpolation
    norms = delay_linearisation(term, times, states).delayed_norms[0, :, 0]
    # t = 0, 1: t - 1.5 < 0 reads the history 7; t = 2, 3, 4: y(0.5, 1.5, 2.5) = 2, 4, 6.
    np.testing.assert_allclose(norms.numpy(), [7.0, 7.0, 2.0, 4.0, 6.0], rtol=1e-12)


def test_delay_linearisation_rejects_a_term_without_delays() -> None:
    with pytest.raises(InvalidInputError, match="`term` must be a DelayTerm; got ODETerm"):
        delay_linearisation(nct.ODETerm(lambda t, y, args: -y), torch.zeros(1, 2), torch.zeros(1, 2, 1))

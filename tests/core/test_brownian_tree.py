"""BrownianTree: a Brownian motion whose values depend on its seed alone, with space-time Lévy area."""

from __future__ import annotations

import pytest
import torch
import torchsde

import neuralct as nct
from neuralct.paths.brownian_tree import BrownianTree

F64 = torch.float64


def test_torchsde_brownian_interval_values_depend_on_the_query_sequence():
    # Why BrownianTree exists: the same seed, queried after different first queries, gives another path.
    first, second = (torchsde.BrownianInterval(0.0, 1.0, size=(3, 2), dtype=F64, entropy=7) for _ in range(2))
    first(0.0, 0.9)
    second(0.2, 0.25)
    assert (first(0.0, 0.3137) - second(0.0, 0.3137)).abs().max() > 0.1


def test_tree_values_do_not_depend_on_the_query_sequence_or_the_batch():
    seed, times = 7, torch.tensor([0.3137, 0.5, 0.9, 0.0001], dtype=F64)
    fresh = BrownianTree(0.0, 1.0, (4, 2), dtype=F64, seed=seed).evaluate(times)
    busy = BrownianTree(0.0, 1.0, (4, 2), dtype=F64, seed=seed)
    busy.increment(0.2, 0.25), busy.increment_and_area(torch.rand(4, dtype=F64), 1.0)
    assert torch.equal(busy.evaluate(times), fresh)
    alone = BrownianTree(0.0, 1.0, (4, 2), dtype=F64, seed=seed).rows([2]).evaluate(times[2:3])
    assert torch.equal(alone, fresh[2:3])
    assert not torch.equal(BrownianTree(0.0, 1.0, (4, 2), dtype=F64, seed=seed + 1).evaluate(times), fresh)


def test_a_dyadic_query_equals_the_same_time_inside_a_non_dyadic_batch():
    tree = BrownianTree(0.0, 1.0, (3, 2), dtype=F64, seed=3)
    dyadic = tree.evaluate(0.5)
    mixed = tree.evaluate(torch.tensor([0.5, 0.123, 0.5], dtype=F64))
    assert torch.equal(mixed[[0, 2]], dyadic[[0, 2]])


@pytest.mark.parametrize(("ta", "tb"), [(0.0, 2.0), (0.3, 0.55), (1.999, 2.0), (0.7, 0.2)])
def test_increments_and_areas_have_the_brownian_moments(ta, tb):
    n, length = 40000, abs(tb - ta)
    dw, area = BrownianTree(0.0, 2.0, (n // 2, 2), dtype=F64, seed=11).increment_and_area(ta, tb)
    tolerance = 5 * (2 / n) ** 0.5  # five standard errors of a variance estimate
    assert abs(float(dw.var()) / length - 1) < tolerance
    assert abs(float(area.var()) * 12 / length - 1) < tolerance
    assert abs(float(dw.mean())) / length**0.5 < 5 / n**0.5
    assert abs(float((dw * area).mean())) / length < 5 / n**0.5


def test_per_sample_increments_have_variance_equal_to_their_own_step_and_disjoint_ones_are_uncorrelated():
    n = 20000
    tree = BrownianTree(0.0, 1.0, (n, 1), dtype=F64, seed=5)
    ta = torch.rand(n, dtype=F64, generator=torch.Generator().manual_seed(0)) * 0.5
    tb = ta + 0.5 * torch.rand(n, dtype=F64, generator=torch.Generator().manual_seed(1))
    ratio = tree.increment(ta, tb).squeeze(1) ** 2 / (tb - ta)
    assert abs(float(ratio.mean()) - 1) < 5 * (2 / n) ** 0.5
    early, late = tree.increment(0.1, 0.4), tree.increment(0.4, 0.9)
    assert abs(float((early * late).mean())) < 5 * (0.3 * 0.5 / n) ** 0.5
    assert abs(float((tree.evaluate(0.3) * tree.evaluate(0.8)).mean()) - 0.3) < 5 * (0.3 * 0.8 / n) ** 0.5


def test_increments_add_up_and_areas_obey_chens_relation_at_any_times():
    tree = BrownianTree(0.0, 1.0, (6, 2), dtype=F64, seed=2)
    s, u, t = 0.1, 0.37, 0.9
    (wa, ha), (wb, hb), (wc, hc) = (tree.increment_and_area(a, b) for a, b in ((s, u), (u, t), (s, t)))
    torch.testing.assert_close(wa + wb, wc, rtol=0, atol=1e-14)
    chen = ((t - u) * (hb + 0.5 * wa) + (u - s) * (ha - 0.5 * wb)) / (t - s)
    torch.testing.assert_close(chen, hc, rtol=0, atol=1e-14)


def test_a_reversed_interval_negates_the_increment_and_keeps_the_area():
    tree = BrownianTree(0.0, 1.0, (4, 3), dtype=F64, seed=8)
    forward, backward = tree.increment_and_area(0.2, 0.65), tree.increment_and_area(0.65, 0.2)
    torch.testing.assert_close(backward[0], -forward[0], rtol=0, atol=1e-15)
    torch.testing.assert_close(backward[1], forward[1], rtol=0, atol=1e-15)


def test_brownian_path_areas_have_the_brownian_moments_and_flip_like_the_tree():
    path = nct.BrownianPath(0.0, 1.0, (20000, 1), dtype=F64, seed=1, levy_area=nct.LevyArea.SPACE_TIME)
    dw, area = path.increment_and_area(0.2, 0.45)
    assert abs(float(area.var()) * 12 / 0.25 - 1) < 5 * (2 / 20000) ** 0.5
    back_dw, back_area = path.increment_and_area(0.45, 0.2)
    assert torch.equal(back_dw, -dw) and torch.equal(back_area, area)
    with pytest.raises(nct.InvalidInputError, match="levy_area"):
        nct.BrownianPath(0.0, 1.0, (2, 1), seed=1).increment_and_area(0.0, 0.5)


def test_the_tree_rejects_bad_arguments_by_name():
    with pytest.raises(nct.InvalidInputError, match="`depth`"):
        BrownianTree(0.0, 1.0, (2, 1), depth=40)
    with pytest.raises(nct.InvalidInputError, match="`t1`"):
        BrownianTree(1.0, 1.0, (2, 1))
    with pytest.raises(nct.InvalidInputError, match="`tb` must lie"):
        BrownianTree(0.0, 1.0, (2, 1)).increment(0.0, 1.5)
    with pytest.raises(nct.InvalidInputError, match="`index`"):
        BrownianTree(0.0, 1.0, (2, 1)).rows([2])

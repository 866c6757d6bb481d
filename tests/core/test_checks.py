"""The shared argument checks: what each accepts, what it refuses, and how the refusal reads."""

import math
import re

import numpy as np
import pytest
import torch

from neuralct._checks import check_choice, check_instance, check_int, check_number, check_sizes, describe, did_you_mean
from neuralct._validate import check_finite, check_tensor
from neuralct.errors import InvalidInputError


@pytest.mark.parametrize(("value", "low", "high"), [(1, 1, None), (0, 0, None), (7, 2, 7), (10**20, 1, None)])
def test_check_int_accepts_ints_in_range_and_returns_them(value, low, high):
    assert check_int("n", value, low, high) is value


@pytest.mark.parametrize(
    ("value", "low", "high", "message"),
    [
        (True, 1, None, "`n` must be a positive int; got True"),
        (False, 0, None, "`n` must be a non-negative int; got False"),
        (0, 1, None, "`n` must be a positive int; got 0"),
        (2.0, 1, None, "`n` must be a positive int; got 2.0"),
        (np.int64(3), 1, None, "`n` must be a positive int; got np.int64(3)"),
        ("3", 1, None, "`n` must be a positive int; got '3'"),
        (1, 2, None, "`n` must be an int >= 2; got 1"),
        (8, 2, 7, "`n` must be an int in [2, 7]; got 8"),
        (None, 1, None, "`n` must be a positive int; got None"),
    ],
)
def test_check_int_refuses_bools_non_ints_and_out_of_range_values(value, low, high, message):
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        check_int("n", value, low, high)


def test_check_int_and_check_number_take_none_only_when_optional():
    assert check_int("n", None, optional=True) is None
    assert check_number("x", None, 0.0, optional=True) is None
    with pytest.raises(InvalidInputError, match=re.escape("`n` must be None or a positive int; got 0")):
        check_int("n", 0, optional=True)


def test_check_sizes_names_the_first_bad_keyword():
    check_sizes(a=1, b=2)
    with pytest.raises(InvalidInputError, match="`b` must be a positive int; got True"):
        check_sizes(a=1, b=True)


@pytest.mark.parametrize(
    ("value", "kwargs", "expected"),
    [(3, {}, 3.0), (0.0, {"low": 0.0}, 0.0), (1.0, {"low": 0.0, "high": 1.0}, 1.0), (-1e300, {}, -1e300)],
)
def test_check_number_accepts_finite_numbers_in_range_as_floats(value, kwargs, expected):
    result = check_number("x", value, **kwargs)
    assert result == expected and type(result) is float


@pytest.mark.parametrize(
    ("value", "kwargs", "message"),
    [
        (True, {}, "`x` must be a finite number; got True"),
        (math.nan, {}, "`x` must be a finite number; got nan"),
        (math.inf, {"low": 0.0}, "`x` must be a finite number >= 0; got inf"),
        (-math.inf, {}, "`x` must be a finite number; got -inf"),
        (0.0, {"low": 0.0, "open_low": True}, "`x` must be a positive finite number; got 0.0"),
        (0.5, {"low": 1.0, "open_low": True}, "`x` must be a finite number > 1; got 0.5"),
        (1.0, {"low": 0.0, "high": 1.0, "open_high": True}, "`x` must be a finite number in [0, 1); got 1.0"),
        (2.0, {"low": 0.0, "high": 1.0}, "`x` must be a finite number in [0, 1]; got 2.0"),
        ("1", {}, "`x` must be a finite number; got '1'"),
        (torch.tensor(1.0), {}, "`x` must be a finite number; got Tensor of shape () and dtype torch.float32"),
    ],
)
def test_check_number_refuses_bools_nan_inf_non_numbers_and_out_of_range(value, kwargs, message):
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        check_number("x", value, **kwargs)


def test_check_choice_returns_a_valid_choice():
    assert check_choice("mode", "causal", ("causal", "bidirectional")) == "causal"
    assert check_choice("fill", None, (None, "linear")) is None


def test_check_choice_lists_the_choices_and_suggests_the_closest():
    # difflib's ratio, not ours: 'casual' is closest to 'causal', nothing is close to 'zzz'.
    with pytest.raises(InvalidInputError) as error:
        check_choice("mode", "casual", ("causal", "bidirectional"))
    assert str(error.value) == ("`mode` must be one of 'causal', 'bidirectional'; got 'casual'; did you mean 'causal'?")
    with pytest.raises(InvalidInputError, match=r"got 'zzz'$"):
        check_choice("mode", "zzz", ("causal", "bidirectional"))


def test_check_choice_refuses_unhashable_and_array_values_without_comparing_them():
    with pytest.raises(InvalidInputError, match=r"got Tensor of shape \(2,\)"):
        check_choice("mode", torch.ones(2), ("a", "b"))
    with pytest.raises(InvalidInputError, match=r"got list of 7 items"):
        check_choice("mode", list(range(7)), ("a", "b"))


def test_did_you_mean_is_empty_when_nothing_is_close():
    assert did_you_mean("dopri5", ["dopri5", "tsit5"]).startswith("; did you mean 'dopri5'")
    assert did_you_mean("xyz", ["dopri5", "tsit5"]) == ""


def test_check_instance_names_the_expected_class_with_its_article():
    assert check_instance("flag", True, bool) is True
    with pytest.raises(InvalidInputError, match=re.escape("`flag` must be a bool; got 'yes'")):
        check_instance("flag", "yes", bool)
    with pytest.raises(InvalidInputError, match=re.escape("`x` must be an int; got 1.5")):
        check_instance("x", 1.5, int)


def test_check_tensor_checks_type_rank_dtype_and_values():
    x = torch.zeros(2, 3)
    assert check_tensor("x", x, ndim=2, shape="[B, C]", floating=True, finite=True) is x
    with pytest.raises(InvalidInputError, match=re.escape("`x` must be a floating tensor [B, C]; got [1.0, 2.0]")):
        check_tensor("x", [1.0, 2.0], shape="[B, C]", floating=True)
    with pytest.raises(InvalidInputError, match=r"`x` must be a tensor \[B, C\]; got Tensor of shape \(3,\)"):
        check_tensor("x", torch.zeros(3), ndim=2, shape="[B, C]")
    with pytest.raises(InvalidInputError, match=r"`x` must be a floating tensor; got .*torch.int64"):
        check_tensor("x", torch.zeros(3, dtype=torch.long), floating=True)
    with pytest.raises(InvalidInputError, match=re.escape("`x` must be finite; x[1, 2] = inf")):
        check_tensor("x", torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, math.inf]]), finite=True)


def test_check_finite_points_at_the_first_nan():
    with pytest.raises(InvalidInputError, match=re.escape("`y` must be finite; y[2] = nan")):
        check_finite("y", torch.tensor([0.0, 1.0, math.nan, math.nan]))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (torch.zeros(2, 3, dtype=torch.float64), "Tensor of shape (2, 3) and dtype torch.float64"),
        (np.zeros((4,), dtype=np.int32), "ndarray of shape (4,) and dtype int32"),
        (3, "3"),
        (True, "True"),
        (math.nan, "nan"),
        ("abc", "'abc'"),
        (None, "None"),
        ([1, 2.5], "[1, 2.5]"),
        ((1, "a"), "(1, 'a')"),
        (list(range(7)), "list of 7 items"),
        ([torch.zeros(1)], "list of 1 items"),
        ({"a": 1}, "dict of 1 items"),
        (torch.nn.Linear, "the class Linear (pass an instance)"),
        (torch.nn.Linear(2, 2), "Linear"),
        (lambda: None, "function"),
    ],
)
def test_describe_shows_shape_and_dtype_of_arrays_and_the_repr_or_type_of_other_values(value, expected):
    assert describe(value) == expected


def test_describe_names_the_device_of_a_tensor_off_the_cpu():
    assert describe(torch.zeros(1, device="meta")) == "Tensor of shape (1,) and dtype torch.float32 on meta"

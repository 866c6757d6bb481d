"""Calling a module with some of its parameters replaced, without `functional_call`'s walks.

`torch.func.functional_call` finds every named tensor of the module tree on each call (module
walks, weight-tie detection, pytree flattening). A backward solve calls the same module with the
same parameter names hundreds of times, so the places to swap are found once (`ParameterSlots`)
and each call only assigns into the modules' parameter dicts and restores them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from torch import Tensor, nn


class ParameterSlots:
    """Where each of `names` (parameters of `module`, as `named_parameters()` gives them) lives:
    for each, every `(submodule, attribute)` holding that parameter, tied copies included.

    Args:
        module: the module whose parameters are swapped.
        names: the parameter names to swap, in the order of the tensors given to `swapped`.
    """

    def __init__(self, module: nn.Module, names: Sequence[str]):
        modules = dict(module.named_modules(remove_duplicate=False))
        by_id: dict[int, list[tuple[nn.Module, str]]] = {}
        for full, parameter in module.named_parameters(remove_duplicate=False):
            owner, _, attribute = full.rpartition(".")
            by_id.setdefault(id(parameter), []).append((modules[owner], attribute))
        wanted = dict(module.named_parameters())
        self.places = [by_id[id(wanted[name])] for name in names]

    @contextmanager
    def swapped(self, tensors: Sequence[Tensor]) -> Iterator[None]:
        """Within the block, parameter i (every place holding it) is `tensors[i]` (any shape
        the module accepts there); the parameters are put back on exit, also on error."""
        saved = []
        try:
            for places, tensor in zip(self.places, tensors):
                for owner, attribute in places:
                    saved.append((owner, attribute, owner._parameters[attribute]))
                    owner._parameters[attribute] = tensor
            yield
        finally:
            for owner, attribute, original in reversed(saved):
                owner._parameters[attribute] = original

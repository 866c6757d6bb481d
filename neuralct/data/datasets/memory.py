"""Long-memory probes: the adding task, the copy task and noise-padded classification.

Each is regularly sampled and fully observed, with times `index / (L - 1)` on `[0, 1]` whatever
the length L, so a longer sequence is a finer grid over the same interval (a model that steps
per observation sees L steps). Draws come from a `torch.Generator` seeded by `(seed, split)`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..series import IrregularBatch
from ._common import check_count, check_scale, generator_for, regular_batch


def adding_task(split: str, seed: int, size: int = 128, length: int = 100) -> IrregularBatch:
    """Adding task: add the two marked numbers of a long sequence (regression; baseline MSE 1/6).

    Channel 0 holds numbers $u_k \\sim U(0, 1)$; channel 1 is 0 except for two markers (1.0), one
    at a uniform position in the first half `[0, length // 2)` and one in the second half. The
    target is the sum of the two marked numbers; predicting its mean 1 scores MSE 1/6 (the
    variance of a sum of two uniforms), the level a model must beat to show memory.

    - Source: Hochreiter and Schmidhuber (1997), in the two-channel form of Arjovsky, Shah and
      Bengio (2016); generated. Licence: that of neuralct.
    - Sizes: `size` samples per split ("train", "val", "test"); C = 2; every length `length`.
    - Targets: float `[B]`, in `[0, 2]`.
    - Times: `index / (length - 1)`.

    Args:
        split: "train", "val" or "test".
        seed: the seed of the draw.
        size: number of samples B.
        length: sequence length L (at least 2).
    """
    check_count(size=(size, 1), length=(length, 2))
    generator = generator_for(seed, split)
    dtype = torch.get_default_dtype()
    numbers = torch.rand(size, length, generator=generator, dtype=dtype)
    half = length // 2
    first = torch.randint(0, half, (size,), generator=generator)
    second = torch.randint(half, length, (size,), generator=generator)
    markers = torch.zeros(size, length, dtype=dtype)
    rows = torch.arange(size)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    targets = numbers[rows, first] + numbers[rows, second]
    return regular_batch(torch.stack([numbers, markers], dim=-1), targets)


def copy_task(
    split: str, seed: int, size: int = 128, delay: int = 20, memory: int = 10, symbols: int = 8
) -> IrregularBatch:
    """Copy task: recall `memory` symbols after `delay` blank steps (sequence classification).

    The input, one-hot over `symbols + 2` channels (symbols 0 to `symbols - 1`, then blank, then
    cue), is `memory` random symbols, `delay - 1` blanks, one cue, and `memory` blanks: length
    L = `delay + 2 * memory`. The model must output the `memory` symbols, in order, over the last
    `memory` steps. Guessing scores $\\log(\\text{symbols})$ cross-entropy per recalled symbol.

    - Source: Hochreiter and Schmidhuber (1997), in the form of Arjovsky, Shah and Bengio
      (2016); generated. Licence: that of neuralct.
    - Sizes: `size` samples per split ("train", "val", "test"); C = `symbols + 2`; length L.
    - Targets: `long` `[B, memory]`, the symbols to recall (class indices 0 to `symbols - 1`).
    - Times: `index / (L - 1)`.

    Args:
        split: "train", "val" or "test".
        seed: the seed of the draw.
        size: number of samples B.
        delay: steps from the last symbol to the cue (at least 1).
        memory: number of symbols to remember (at least 1).
        symbols: alphabet size (at least 2).
    """
    check_count(size=(size, 1), delay=(delay, 1), memory=(memory, 1), symbols=(symbols, 2))
    generator = generator_for(seed, split)
    targets = torch.randint(0, symbols, (size, memory), generator=generator)
    blank, cue = symbols, symbols + 1
    tokens = torch.full((size, delay + 2 * memory), blank)
    tokens[:, :memory] = targets
    tokens[:, memory + delay - 1] = cue
    values = torch.nn.functional.one_hot(tokens, symbols + 2).to(torch.get_default_dtype())
    return regular_batch(values, targets)


def noise_padded(
    split: str,
    seed: int,
    size: int = 128,
    classes: int = 4,
    signal_length: int = 16,
    pad_length: int = 112,
    noise: float = 0.1,
) -> IrregularBatch:
    """Noise-padded classification: a class pattern at the start, then a long stretch of pure noise.

    The first `signal_length` = S steps carry the class template plus Gaussian noise,
    $x_k = \\sin\\big(\\pi (c + 1)(k + \\tfrac12) / S\\big) + \\sigma\\varepsilon_k$ (templates of
    different classes are orthogonal), and the next `pad_length` steps are $U[0, 1)$ noise that
    says nothing about the class. A model must carry the start across the padding (after the
    noise-padded sCIFAR probe of HOPE; here at a CPU scale).

    - Source: generated. Licence: that of neuralct.
    - Sizes: `size` samples per split ("train", "val", "test"); C = 1; length S + `pad_length`.
    - Targets: `long` class 0 to `classes - 1`, uniform.
    - Times: `index / (L - 1)`.

    Args:
        split: "train", "val" or "test".
        seed: the seed of the draw.
        size: number of samples B.
        classes: number of classes (2 to S).
        signal_length: S, the length of the class pattern.
        pad_length: the number of noise steps after it (0 or more).
        noise: $\\sigma$, the noise on the pattern.
    """
    check_count(size=(size, 1), signal_length=(signal_length, 2), pad_length=(pad_length, 0))
    check_count(classes=(classes, 2))
    check_count(signal_length=(signal_length, classes))
    check_scale("noise", noise)
    generator = generator_for(seed, split)
    dtype = torch.get_default_dtype()
    labels = torch.randint(0, classes, (size,), generator=generator)
    signal = noise_padded_templates(classes, signal_length, dtype)[labels]
    signal = signal + noise * torch.randn(size, signal_length, generator=generator, dtype=dtype)
    padding = torch.rand(size, pad_length, generator=generator, dtype=dtype)
    return regular_batch(torch.cat([signal, padding], dim=1).unsqueeze(-1), labels)


def noise_padded_templates(classes: int, signal_length: int, dtype: torch.dtype | None = None) -> Tensor:
    """`[classes, signal_length]` class patterns $\\sin(\\pi (c + 1)(k + \\frac12) / S)$ of `noise_padded`."""
    k = torch.arange(signal_length, dtype=torch.float64) + 0.5
    c = torch.arange(1, classes + 1, dtype=torch.float64).unsqueeze(1)
    return torch.sin(math.pi * c * k / signal_length).to(dtype or torch.get_default_dtype())

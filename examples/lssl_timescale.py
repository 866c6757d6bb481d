"""Timescale shift: train LSSL at one sampling rate, test at twice the rate by halving its steps.

Each series is a sum of two sinusoids on [0, 4] time units whose frequencies give the class
(class c has frequencies near c + 1 and 2(c + 1) cycles per unit, with random phases, amplitudes
and noise). Models are trained on series sampled at rate r = 32 per unit (L = 128) and tested on
the same series sampled at 2r (L = 256) without retraining. LSSL is a continuous-time
system sampled with its learned steps, so at 2r it runs with `dt_scale=0.5` and sees the same
signal; a GRU has no notion of time between steps, so at 2r every frequency looks halved to it.

Run `python examples/lssl_timescale.py [--small] [--out DIR]`; the figure `lssl_timescale.png`
(one series of each class at both rates) is written to `--out` (default `examples/output/`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from _training import accuracy  # noqa: E402  (examples/ is on the path when run as a script)
from lssl_digits import fit, parse_options  # noqa: E402  (examples/ is on the path when run as a script)

from neuralct.models.ssm.deep import DeepSSM  # noqa: E402
from neuralct.models.ssm.lssl import LSSL  # noqa: E402

DURATION = 4.0


class Config(NamedTuple):
    classes: int = 4
    rate: int = 32  # samples per time unit at training time: 4 or more per period of the fastest wave
    train_size: int = 1024
    test_size: int = 512
    d_model: int = 16
    d_state: int = 16
    n_layers: int = 2
    epochs: int = 15
    batch: int = 64
    lr: float = 1e-2
    lr_dt: float = 1e-3


SMALL = Config(train_size=256, test_size=128, epochs=4, batch=32)


def sinusoids(config: Config, size: int, rate: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`([B, L, 1] series sampled at `rate` on (0, DURATION], [B] classes)`; same draws for every rate."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(config.classes, (size,), generator=generator)
    base = (labels + 1.0) * (1 + 0.05 * torch.randn(size, generator=generator))
    phase = 2 * math.pi * torch.rand(size, 2, generator=generator)
    amplitude = 0.5 + torch.rand(size, 2, generator=generator)
    t = torch.arange(1, int(DURATION * rate) + 1) / rate
    waves = [
        amplitude[:, i, None] * torch.sin(2 * math.pi * (i + 1) * base[:, None] * t + phase[:, i, None]) for i in (0, 1)
    ]
    noise = 0.1 * torch.randn(size, t.shape[0], generator=generator)
    return (waves[0] + waves[1] + noise)[..., None], labels


class GRUClassifier(torch.nn.Module):
    """A discrete-time baseline: GRU over the steps, linear head on the last hidden state."""

    def __init__(self, hidden: int, classes: int) -> None:
        super().__init__()
        self.gru = torch.nn.GRU(1, hidden, batch_first=True)
        self.head = torch.nn.Linear(hidden, classes)

    def forward(self, u: torch.Tensor, layer_kwargs: dict | None = None) -> torch.Tensor:
        """`[B, L, 1] -> [B, classes]`; `layer_kwargs` (step scales) mean nothing to a GRU and are ignored."""
        return self.head(self.gru(u)[0][:, -1])


def build(kind: str, config: Config) -> torch.nn.Module:
    if kind == "gru":
        return GRUClassifier(2 * config.d_model, config.classes)
    factory = lambda h: LSSL(h, config.d_state)
    return DeepSSM(factory, 1, config.d_model, config.n_layers, config.classes, pool="mean")


def plot(config: Config, out: Path) -> None:
    figure, axes = plt.subplots(config.classes, 1, figsize=(6, 1.4 * config.classes), sharex=True)
    for rate, style in ((config.rate, "o-"), (2 * config.rate, ".")):
        series, labels = sinusoids(config, 64, rate, seed=2)
        t = torch.arange(1, series.shape[1] + 1) / rate
        for c, axis in enumerate(axes):
            axis.plot(t, series[int((labels == c).nonzero()[0]), :, 0], style, ms=3, lw=0.8, label=f"rate {rate}")
            axis.set_ylabel(f"class {c}")
    axes[0].legend(fontsize=8, loc="upper right")
    axes[-1].set_xlabel("time")
    figure.tight_layout()
    figure.savefig(out / "lssl_timescale.png", dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    options = parse_options(argv, __doc__.splitlines()[0])
    config = SMALL if options.small else Config()
    train = sinusoids(config, config.train_size, config.rate, seed=0)
    test = sinusoids(config, config.test_size, config.rate, seed=1)
    test_fast = sinusoids(config, config.test_size, 2 * config.rate, seed=1)  # the same series, twice as dense
    result = {}
    for kind in ("lssl", "gru"):
        torch.manual_seed(0)
        model = build(kind, config)
        fit(model, train, test, config)
        result[kind] = {"rate": accuracy(model, *test), "double_rate": accuracy(model, *test_fast, dt_scale=0.5)}
        print(
            f"{kind:>4}: test accuracy {100 * result[kind]['rate']:.1f}% at rate {config.rate}, "
            f"{100 * result[kind]['double_rate']:.1f}% at rate {2 * config.rate} (steps halved, no retraining)"
        )
    plot(config, options.out)
    return result


if __name__ == "__main__":
    main()

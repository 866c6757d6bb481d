"""Pixel-by-pixel digit classification with LSSL-f: HiPPO-LegS against a random state matrix.

scikit-learn's 8x8 digits read row by row are 64-step univariate sequences (1433 train, 364 test).
Two deep LSSL models that differ only in their frozen state matrix (A, B) are trained the same
way: HiPPO-LegS, whose state holds a projection of the whole history on Legendre polynomials,
and a random A (Gaussian entries minus the identity, the ablation of the LSSL paper). The steps,
C, D and the rest of the stack are learned in both. HiPPO's memory should win clearly.

Run `python examples/lssl_digits.py [--small] [--out DIR]`; the figure `lssl_digits.png` (test
accuracy per epoch) is written to `--out` (default `examples/output/`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from _training import accuracy, train_epoch  # noqa: E402  (examples/ is on the path when run as a script)

from neuralct.data.datasets import load  # noqa: E402
from neuralct.models.ssm.deep import DeepSSM, param_groups  # noqa: E402
from neuralct.models.ssm.lssl import LSSL  # noqa: E402


class Config(NamedTuple):
    train_size: int | None = None  # None: all 1433 training digits
    d_model: int = 32
    d_state: int = 32
    n_layers: int = 2
    dt_min: float = 5e-3  # 1 / dt spans the sequence length 64 with room on both sides
    dt_max: float = 0.5
    epochs: int = 20
    batch: int = 64
    lr: float = 5e-3
    lr_dt: float = 1e-3


SMALL = Config(train_size=512, d_model=16, d_state=16, epochs=3, batch=32, lr=1e-2)


def digits(split: str, size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """`([B, 64, 1] pixels scaled to [0, 1], [B] labels)`."""
    batch = load("pixel_digits", split)
    return batch.values[:size] / 16.0, batch.targets[:size]


def build(a: str, config: Config) -> DeepSSM:
    """A deep LSSL-f classifier (A and B frozen) with the state matrix `a` ("legs" or "random")."""
    factory = lambda h: LSSL(h, config.d_state, a=a, learn=False, dt_min=config.dt_min, dt_max=config.dt_max)
    return DeepSSM(factory, 1, config.d_model, config.n_layers, 10, pool="last")  # the state must remember


def fit(model: torch.nn.Module, train: tuple, test: tuple, config: Config) -> list[float]:
    """Adam on cross-entropy (LSSL steps at `config.lr_dt`); returns the test accuracy after each epoch.

    `config` needs `epochs`, `batch`, `lr` and `lr_dt`; `train` and `test` are `(inputs, labels)`.
    """
    optimizer = torch.optim.Adam(param_groups(model, config.lr, lr_dt=config.lr_dt))
    generator = torch.Generator().manual_seed(0)
    history = []
    for _ in range(config.epochs):
        train_epoch(model, optimizer, train, config.batch, generator)
        history.append(accuracy(model, *test))
    return history


def plot(histories: dict[str, list[float]], out: Path) -> None:
    figure, axes = plt.subplots(figsize=(5, 3.5))
    for label, history in histories.items():
        axes.plot(range(1, len(history) + 1), [100 * a for a in history], "o-", ms=3, label=label)
    axes.set(xlabel="epoch", ylabel="test accuracy (%)", title="LSSL-f on pixel-by-pixel 8x8 digits")
    axes.legend()
    figure.tight_layout()
    figure.savefig(out / "lssl_digits.png", dpi=120)
    plt.close(figure)


def parse_options(argv: list[str] | None, description: str) -> argparse.Namespace:
    """The options of the LSSL examples: `--small`, `--out` (created) and `--threads` (applied)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--small", action="store_true", help="CI-sized run (a few seconds)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "output", help="folder for the figure")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (small models gain nothing from more)")
    options = parser.parse_args(argv)
    torch.set_num_threads(options.threads)
    options.out.mkdir(parents=True, exist_ok=True)
    return options


def main(argv: list[str] | None = None) -> dict[str, float]:
    options = parse_options(argv, __doc__.splitlines()[0])
    config = SMALL if options.small else Config()
    train, test = digits("train", config.train_size), digits("test")
    histories, result = {}, {}
    for a, label in (("legs", "HiPPO-LegS"), ("random", "random A")):
        torch.manual_seed(0)
        start = time.perf_counter()
        histories[label] = fit(build(a, config), train, test, config)
        result[a] = histories[label][-1]
        print(f"{label:>10}: test accuracy {100 * result[a]:.1f}% ({time.perf_counter() - start:.0f} s)")
    plot(histories, options.out)
    return result


if __name__ == "__main__":
    main()

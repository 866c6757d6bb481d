"""Noise-padded digits: HOPE's flat memory against a diagonal SSM's (S4D) decaying one.

Each 8x8 digit is read pixel by pixel (64 steps, grey levels scaled to [0, 1]) and followed by
P steps of U[0, 1) noise; the classifier mean-pools over the noise steps only, so the class must
be carried across the padding (a CPU-sized version of HOPE's noise-padded sCIFAR probe). The same
DeepSSM stack is trained with HOPE layers and with S4D layers of about the same parameter count,
for each P; the figures are the accuracy against P and the first layer's impulse responses.

    python examples/hope_noise_padded.py            # P = 64, 256, 1024 (about half an hour on 2 cores)
    python examples/hope_noise_padded.py --small    # CI-sized: a few seconds
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
from neuralct.models.ssm.hope import HOPE  # noqa: E402
from neuralct.models.ssm.s4d import S4D  # noqa: E402

SIGNAL = 64  # pixels per digit


class Config(NamedTuple):
    paddings: tuple[int, ...] = (64, 256, 1024)
    train_size: int | None = None  # None: all 1433 training digits
    d_model: int = 32
    n_layers: int = 2
    markov: int = 256  # HOPE: n real Markov parameters per channel
    hope_dt: float = 0.2  # HOPE's step, fixed as in the paper's noise-padded runs: memory of about n / dt steps
    d_state: int = 128  # S4D: 64 complex modes, 256 real parameters per channel as HOPE has
    epochs: int = 60
    batch: int = 64
    lr: float = 3e-3
    lr_hope: float = 3e-3  # HOPE's Markov parameters (bounded effect: the kernel is sqrt(n)-Lipschitz in them)
    lr_s4d: float = 1e-3  # S4D's eigenvalues and steps, its paper's rate


SMALL = Config(paddings=(16, 64), train_size=128, d_model=8, markov=16, d_state=8, epochs=2, batch=64)


def noise_padded_digits(split: str, padding: int, size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """`([B, 64 + P, 1] inputs, [B] labels)`: scaled pixels, then U[0, 1) noise seeded by the split."""
    batch = load("pixel_digits", split)
    pixels, labels = batch.values[:size] / 16.0, batch.targets[:size]
    generator = torch.Generator().manual_seed(0 if split == "train" else 1)
    noise = torch.rand(pixels.shape[0], padding, 1, generator=generator, dtype=pixels.dtype)
    return torch.cat([pixels, noise], dim=1), labels


def build(kind: str, config: Config) -> DeepSSM:
    """The stack with HOPE (step fixed at `config.hope_dt`) or S4D-Lin (steps learned from 1e-3..1e-1) layers."""
    if kind == "hope":
        factory = lambda h: HOPE(h, config.markov, dt_min=config.hope_dt, dt_max=config.hope_dt, learn_dt=False)
    else:
        factory = lambda h: S4D(h, config.d_state, dt_min=1e-3, dt_max=1e-1)
    return DeepSSM(factory, 1, config.d_model, config.n_layers, 10, pool=slice(SIGNAL, None), mix="glu")


def train_and_test(model: DeepSSM, train: tuple, test: tuple, config: Config) -> float:
    """AdamW with a cosine schedule, SSM parameters at their own rate without weight decay; test accuracy."""
    lr_ssm = config.lr_hope if isinstance(model.blocks[0].layer, HOPE) else config.lr_s4d
    groups = param_groups(model, config.lr, lr_ssm=lr_ssm, lr_dt=lr_ssm, weight_decay=0.01)
    optimizer = torch.optim.AdamW(groups)
    batches = -(-train[0].shape[0] // config.batch)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.epochs * batches)
    generator = torch.Generator().manual_seed(0)
    for _ in range(config.epochs):
        train_epoch(model, optimizer, train, config.batch, generator, schedule)
    return accuracy(model, *test)


def plot_accuracy(accuracy: dict[str, dict[int, float]], out: Path) -> None:
    figure, axes = plt.subplots(figsize=(5, 3.5))
    for kind, label in (("hope", "HOPE"), ("s4d", "S4D (diagonal)")):
        paddings = sorted(accuracy[kind])
        axes.plot(paddings, [100 * accuracy[kind][p] for p in paddings], "o-", label=label)
    axes.set(xscale="log", xlabel="noise steps P after the 64 pixels", ylabel="test accuracy (%)")
    axes.set_xticks(sorted(accuracy["hope"]), [str(p) for p in sorted(accuracy["hope"])])
    axes.legend()
    figure.tight_layout()
    figure.savefig(out / "accuracy_vs_padding.png", dpi=120)
    plt.close(figure)


def plot_impulse_responses(models: dict[str, DeepSSM], length: int, out: Path) -> None:
    """Mean |kernel| over the channels of each model's first layer, and HOPE's at step 1 (flat up to n)."""
    figure, axes = plt.subplots(figsize=(6, 3.5))
    with torch.no_grad():
        for kind, label in (("hope", "HOPE, first layer"), ("s4d", "S4D, first layer")):
            kernel = models[kind].blocks[0].layer.kernel(length).abs().mean(0)
            axes.plot(kernel / kernel.max(), label=label)
        unit = HOPE(1, models["hope"].blocks[0].layer.markov.shape[1])
        unit.markov.fill_(1.0)
        unit.log_dt.zero_()
        axes.plot(unit.kernel(length)[0], "k--", lw=1, label="HOPE, $h = 1$, $\\Delta = 1$")
    axes.set(xlabel="lag (steps)", ylabel="|impulse response| / max", yscale="symlog", ylim=(0, 1.1))
    axes.set_yscale("symlog", linthresh=1e-2)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out / "impulse_responses.png", dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="CI-sized run (a few seconds)")
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for the PNG figures")
    options = parser.parse_args(argv)
    config = SMALL if options.small else Config()
    options.out.mkdir(parents=True, exist_ok=True)
    accuracy: dict[str, dict[int, float]] = {"hope": {}, "s4d": {}}
    models: dict[str, DeepSSM] = {}
    for padding in config.paddings:
        train = noise_padded_digits("train", padding, config.train_size)
        test = noise_padded_digits("test", padding)
        for kind in accuracy:
            torch.manual_seed(0)
            start = time.perf_counter()
            models[kind] = build(kind, config)
            accuracy[kind][padding] = train_and_test(models[kind], train, test, config)
            seconds = time.perf_counter() - start
            print(f"P = {padding:5d}  {kind:4s}  accuracy {accuracy[kind][padding]:.3f}  ({seconds:.0f} s)")
    plot_accuracy(accuracy, options.out)
    plot_impulse_responses(models, SIGNAL + config.paddings[-1], options.out)
    parameters = {kind: sum(p.numel() for p in model.parameters()) for kind, model in models.items()}
    return {"accuracy": accuracy, "parameters": parameters}


if __name__ == "__main__":
    main()

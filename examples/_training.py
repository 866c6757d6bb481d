"""The training loop the SSM examples share: one epoch of minibatch cross-entropy, and accuracy."""

from __future__ import annotations

import torch


def train_epoch(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    train: tuple[torch.Tensor, torch.Tensor],
    batch: int,
    generator: torch.Generator,
    schedule: torch.optim.lr_scheduler.LRScheduler | None = None,
) -> None:
    """One pass over `train` = `(inputs [B, L, C], labels [B])` in shuffled minibatches."""
    model.train()
    inputs, labels = train
    for rows in torch.randperm(inputs.shape[0], generator=generator).split(batch):
        loss = torch.nn.functional.cross_entropy(model(inputs[rows]), labels[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if schedule is not None:
            schedule.step()


def accuracy(model: torch.nn.Module, inputs: torch.Tensor, labels: torch.Tensor, **layer_kwargs: object) -> float:
    """Fraction of `inputs` `[B, L, C]` classified as `labels` `[B]`, in eval mode; `layer_kwargs`
    (e.g. `dt_scale=0.5`) go to every layer of a `DeepSSM`."""
    model.eval()
    with torch.no_grad():
        predictions = torch.cat([model(x, layer_kwargs).argmax(-1) for x in inputs.split(256)])
    return (predictions == labels).double().mean().item()

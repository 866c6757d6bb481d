"""One process of the data-parallel test (`test_distributed.py`), started by torchrun.

Usage: `torchrun --nproc-per-node N tests/apps/ddp_worker.py CONFIG.json RUN_DIR PARAMS_DIR`. Trains the
run with `neuralct.train.fit` on the process group torchrun describes, and saves this process's
parameters as they are when training ends (before the best checkpoint is reloaded for testing) to
`PARAMS_DIR/rank<R>.pt`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from neuralct.train import run as run_module
from neuralct.train.config import FitConfig
from neuralct.train.distributed import session


def main(config_path: str, run_dir: str, params_dir: str) -> None:
    config = FitConfig.from_mapping(json.loads(Path(config_path).read_text()))
    with session("cpu") as workers:
        finish = run_module._finish

        def save_then_finish(config, run_dir, model, test, workers):
            state = {name: value.detach().clone() for name, value in model.state_dict().items()}
            torch.save(state, Path(params_dir) / f"rank{workers.rank}.pt")
            return finish(config, run_dir, model, test, workers)

        run_module._finish = save_then_finish
        result = run_module.fit(config, run_dir, workers=workers)
        torch.save(result, Path(params_dir) / f"result{workers.rank}.pt")


if __name__ == "__main__":
    main(*sys.argv[1:])

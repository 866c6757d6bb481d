"""The `neuralct` command line: fit with flags and a config file, resume, list, bad input."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from neuralct import registry
from neuralct.cli import main, parser
from neuralct.train.config import SCHEDULES

TINY = ["--model", "gru_delta", "--dataset", "spirals", "--hidden", "4", "--epochs", "2", "--batch-size", "16"]


def test_fit_with_flags_and_a_config_file_writes_the_run_folder(tmp_path: Path, capsys) -> None:
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"dataset_options": {"size": 32, "length": 8}, "epochs": 5}))
    assert main(["fit", "--config", str(config), *TINY, "--out", str(tmp_path / "run")]) == 0
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["epochs"] == 2 and saved["dataset_options"] == {"size": 32, "length": 8}  # flags override the file
    captured = capsys.readouterr()
    assert "epoch 2/2  train loss" in captured.err and "test_accuracy" in captured.out
    assert main(["fit", "--resume", str(tmp_path / "run")]) == 0  # nothing left to train: re-scores the best


def test_bad_flags_exit_2_with_the_valid_choices(tmp_path: Path, capsys) -> None:
    assert main(["fit", "--model", "lct", "--out", str(tmp_path / "x")]) == 2
    assert "unknown model 'lct'; did you mean 'ltc'" in capsys.readouterr().err
    assert main(["fit", "--missing", "1.5", "--out", str(tmp_path / "y")]) == 2
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()  # nothing written before the config is valid


def test_list_and_help_run_as_a_module() -> None:
    listing = subprocess.run(
        [sys.executable, "-m", "neuralct", "list"], capture_output=True, text=True, check=True
    ).stdout
    assert "tau_gru" in listing and "dopri5" in listing and "japanese_vowels" in listing
    help_text = subprocess.run(
        [sys.executable, "-m", "neuralct", "fit", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "--resume RUN_DIR" in help_text and "model='tau_gru'" in help_text


def test_evaluate_rescores_a_run_and_swaps_the_solver_at_inference(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"dataset_options": {"size": 32, "length": 8}}))
    flags = ["--model", "ode_rnn", "--dataset", "spirals", "--hidden", "4", "--epochs", "2", "--batch-size", "16"]
    assert main(["fit", "--config", str(config), *flags, "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run)]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again == json.loads((run / "result.json").read_text())
    assert main(["evaluate", str(run), "--solver", "tsit5", "--rtol", "1e-6"]) == 0
    swapped = json.loads(capsys.readouterr().out)
    assert swapped["test_vf_evals"] > again["test_vf_evals"]  # an adaptive solver at tight tolerance works harder
    assert main(["evaluate", str(run), "--solver", "euler_maruyama"]) == 2  # an SDE solver on an ODE flow
    assert main(["evaluate", str(run), "--solver", "method_of_steps", "--inner-solver", "rk4"]) == 2  # not a DDE
    assert main(["evaluate", str(tmp_path / "nothing")]) == 2
    assert "no trained run" in capsys.readouterr().err


def test_sweep_runs_the_grid_and_writes_the_summary_table_and_plot(tmp_path: Path, capsys) -> None:
    spec = {
        "base": {
            "dataset": "spirals",
            "hidden": 4,
            "epochs": 2,
            "batch_size": 16,
            "dataset_options": {"size": 32, "length": 8},
        },
        "grid": {"model": ["ode_rnn", "ltc"], "solver": [None, "rk4"], "seed": [0]},
    }
    (tmp_path / "grid.json").write_text(json.dumps(spec))
    assert main(["sweep", "--config", str(tmp_path / "grid.json"), "--out", str(tmp_path / "grid")]) == 0
    table = (tmp_path / "grid" / "summary.md").read_text().splitlines()
    assert len(table) == 2 + 4 and "| ltc | rk4 | 1 | test_accuracy" in "\n".join(table)
    assert (tmp_path / "grid" / "summary.png").stat().st_size > 10_000
    assert len(list((tmp_path / "grid").glob("*/result.json"))) == 4
    before = (tmp_path / "grid" / "model=ltc,solver=rk4,seed=0" / "metrics.jsonl").read_text()
    assert (
        main(["sweep", "--config", str(tmp_path / "grid.json"), "--out", str(tmp_path / "grid")]) == 0
    )  # finished runs are kept
    assert (tmp_path / "grid" / "model=ltc,solver=rk4,seed=0" / "metrics.jsonl").read_text() == before
    spec["grid"]["optimizer"] = ["sgd"]
    (tmp_path / "bad.json").write_text(json.dumps(spec))
    assert main(["sweep", "--config", str(tmp_path / "bad.json"), "--out", str(tmp_path / "bad")]) == 2
    assert "grid key 'optimizer'" in capsys.readouterr().err


def test_the_cli_reference_page_is_the_current_help_text() -> None:
    from neuralct.cli import reference_markdown

    page = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
    assert page.read_text() == reference_markdown(), "regenerate it: python -m neuralct.cli --reference > docs/cli.md"


def test_fit_reads_a_yaml_config_and_names_a_bad_one(tmp_path: Path, capsys) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(
        "model: gru_delta\ndataset: spirals\nhidden: 4\nepochs: 1\nschedule: plateau\n"
        "dataset_options:\n  size: 32\n  length: 8\n"
    )
    assert main(["fit", "--config", str(config), "--out", str(tmp_path / "run")]) == 0
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["schedule"] == "plateau" and saved["dataset_options"] == {"size": 32, "length": 8}
    config.write_text("model: [unclosed\n")
    assert main(["fit", "--config", str(config), "--out", str(tmp_path / "bad")]) == 2
    assert "is not valid YAML" in capsys.readouterr().err
    config.write_text("schedule: cosin\n")
    assert main(["fit", "--config", str(config), "--out", str(tmp_path / "bad")]) == 2
    assert "unknown schedule 'cosin'; did you mean 'cosine'" in capsys.readouterr().err


def test_the_progress_bar_redraws_per_batch_on_a_terminal_and_writes_epoch_lines_elsewhere() -> None:
    import io

    from neuralct.train.loop import BatchReport
    from neuralct.train.progress import ProgressBar

    row = {
        "epoch": 3,
        "train_loss": 0.5,
        "train_accuracy": 0.8,
        "train_mae": None,
        "val_loss": 0.6,
        "val_accuracy": 0.75,
        "val_mae": None,
        "lr": 1e-3,
        "seconds": 1.25,
        "vf_evals": 41.2,
    }
    live, log = io.StringIO(), io.StringIO()
    for stream, is_live in ((live, True), (log, False)):
        bar = ProgressBar(10, stream, live=is_live, interval=0.0)
        bar.begin(3)
        for k in (1, 2):
            bar.batch(BatchReport(k, 2, 0.5, 0.8, 40.0))
        bar.epoch(row)
    assert (
        live.getvalue().count("\r") == 3
        and "epoch  3/10 [##########----------] 1/2  loss 0.5000  acc 0.800" in live.getvalue()
    )
    assert "evals/step 40" in live.getvalue()
    assert (
        log.getvalue()
        == "epoch  3/10  train loss 0.5000 acc 0.800 | val loss 0.6000 acc 0.750 | evals/sample 41 | 1.2 s\n"
    )


def test_nproc_is_taken_out_of_the_command_that_torchrun_repeats() -> None:
    from neuralct.cli import _without_nproc

    assert _without_nproc(["fit", "--nproc", "2", "--epochs", "3"]) == ["fit", "--epochs", "3"]
    assert _without_nproc(["fit", "--nproc=4", "--out", "x"]) == ["fit", "--out", "x"]


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("neuralct: error: ") and err.count("\n") == 1, err
    return err


def test_a_file_as_out_a_read_only_folder_and_a_full_disk_exit_2_naming_the_path(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    import errno
    import os

    (tmp_path / "file").write_text("")
    assert main(["fit", *TINY, "--out", str(tmp_path / "file")]) == 2  # before: FileExistsError traceback
    assert f"the run folder {tmp_path / 'file'} is a file, not a folder" in _one_line_error(capsys)

    def read_only(self, *args, **kwargs):  # what a read-only parent answers (root ignores chmod, so it is injected)
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", read_only)
    assert main(["fit", *TINY, "--out", str(tmp_path / "ro" / "run")]) == 2
    assert f"{tmp_path / 'ro' / 'run'}: Permission denied" in _one_line_error(capsys)
    monkeypatch.undo()

    def full(descriptor: int) -> None:  # a full disk answers when the data is flushed
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    assert main(["fit", *TINY, "--out", str(tmp_path / "full")]) == 2
    assert f"{tmp_path / 'full' / 'config.json'}: No space left on device" in _one_line_error(capsys)
    assert not (tmp_path / "full").exists()  # nothing was written: the folder the run created is gone again


def test_misspelled_option_keys_exit_2_with_a_suggestion(tmp_path: Path, capsys) -> None:
    base = {"model": "gru_delta", "dataset": "spirals", "hidden": 4, "epochs": 1}
    cases = [
        (
            {"model_options": {"hiden": 3}},
            "`model_options`: unknown option 'hiden' for model 'gru_delta'; did you mean 'hidden'?",
        ),
        (
            {"dataset_options": {"sise": 32}},
            "`dataset_options`: unknown option 'sise' for dataset 'spirals'; did you mean 'size'",
        ),
        (
            {"model": "tau_gru", "solver": "method_of_steps", "solver_options": {"solvr": "rk4"}},
            "`solver_options`: unknown option 'solvr' for solver 'method_of_steps'; did you mean 'solver'?",
        ),
    ]
    for index, (keys, message) in enumerate(cases):
        (tmp_path / f"{index}.json").write_text(json.dumps(base | keys))
        out = tmp_path / f"run{index}"
        assert main(["fit", "--config", str(tmp_path / f"{index}.json"), "--out", str(out)]) == 2  # before: TypeError
        assert message in _one_line_error(capsys)
        assert not out.exists()


def test_resume_extends_the_epochs_and_refuses_flags_that_change_the_model(tmp_path: Path, capsys) -> None:
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"dataset_options": {"size": 32, "length": 8}}))
    run = tmp_path / "run"
    assert main(["fit", "--config", str(config), *TINY[:-4], "--epochs", "1", "--out", str(run)]) == 0
    assert main(["fit", "--resume", str(run), "--epochs", "2"]) == 0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2]  # before: --epochs was ignored, 1 row
    assert "epoch 2/2  train loss" in capsys.readouterr().err
    assert main(["fit", "--resume", str(run), "--strict"]) == 0  # nothing left to train, in strict mode
    saved = json.loads((run / "config.json").read_text())
    assert saved["epochs"] == 2 and saved["strict"] is True
    assert main(["fit", "--resume", str(run), "--hidden", "8", "--lr", "0.1"]) == 2
    assert "a resumed run can change only epochs, patience, strict; got hidden, lr" in _one_line_error(capsys)
    assert main(["fit", "--resume", str(run), "--out", str(tmp_path / "x")]) == 2
    assert "give neither --config nor --out" in _one_line_error(capsys)


def test_a_sweep_file_with_a_misspelled_top_level_key_is_refused(tmp_path: Path, capsys) -> None:
    spec = {"base": {"model": "gru_delta", "dataset": "spirals", "hidden": 4, "epochs": 1}, "grdi": {"seed": [0, 1]}}
    (tmp_path / "grid.json").write_text(json.dumps(spec))
    assert main(["sweep", "--config", str(tmp_path / "grid.json"), "--out", str(tmp_path / "grid")]) == 2
    assert "unknown key 'grdi' in sweep file" in _one_line_error(capsys)  # before: the base config ran alone
    assert not (tmp_path / "grid").exists()


def test_a_yaml_config_with_a_key_given_twice_is_refused(tmp_path: Path, capsys) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("model: gru_delta\nepochs: 1\ndataset: spirals\nepochs: 60\n")
    assert main(["fit", "--config", str(config), "--out", str(tmp_path / "run")]) == 2  # before: 60 epochs
    assert "the key 'epochs' is given twice (again on line 4)" in _one_line_error(capsys)
    (tmp_path / "run.json").write_text('{"epochs": 1, "epochs": 60}')
    assert main(["fit", "--config", str(tmp_path / "run.json"), "--out", str(tmp_path / "run")]) == 2
    assert "the key 'epochs' is given twice" in _one_line_error(capsys)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("reader", ["head -3", "true"])  # `true` leaves before a line is written
def test_list_into_a_closed_pipe_exits_0_with_nothing_on_stderr(reader: str) -> None:
    listing = f"{shlex.quote(sys.executable)} -m neuralct list"
    result = subprocess.run(
        ["bash", "-c", f'{listing} | {reader} > /dev/null; exit "${{PIPESTATUS[0]}}"'], capture_output=True, text=True
    )
    assert (result.returncode, result.stderr) == (0, "")


def test_list_imports_no_torch_and_prints_every_name_whole() -> None:
    code = "import sys; from neuralct.cli import main; main(['list']); print('torch' in sys.modules, file=sys.stderr)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stderr == "False\n"
    lines = dict(line.split(maxsplit=1) for line in result.stdout.splitlines() if line.startswith("  "))
    assert lines["gru_d"] == "GRU-D of Che et al. (2018): input and hidden decay, the missingness mask as input"
    assert set(lines) >= set(registry.names("dataset")) | set(registry.names("model")) | {"torchsde:srk"}


def test_schedule_help_names_every_schedule_the_config_accepts() -> None:
    help_text = next(a.help for a in _subcommand("fit")._actions if a.dest == "schedule")
    assert all(name in help_text for name in SCHEDULES), help_text


def _subcommand(name: str):
    commands = next(a for a in parser()._actions if a.dest == "command")
    return commands.choices[name]

"""The files of a run folder, written so that no kill, crash or second writer loses its history.

- `RunLock`: one writer per folder. `run.lock` holds the writer's pid; a second `fit` on the
  folder is refused, and the lock of a process that no longer runs (a killed run) is taken over.
- `write_atomically`: a file is replaced whole or not at all (a temporary sibling, flushed to
  disk, renamed over the file); the replaced file can be kept as a previous version.
- `append_metrics`, `recover_metrics`: one row per epoch appended to `metrics.csv` and
  `metrics.jsonl` (and flushed to disk before the epoch's checkpoint is written); on resume the
  rows are recovered from both files, every intact row of either kept, and both replaced
  atomically.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from ..errors import InvalidInputError, NeuralCTError

COLUMNS = (
    "epoch",
    "train_loss",
    "train_accuracy",
    "train_mae",
    "val_loss",
    "val_accuracy",
    "val_mae",
    "lr",
    "seconds",
    "vf_evals",
    "grad_norm",
    "max_jacobian_real",
    "train_failed",
    "val_failed",
)
LOCK = "run.lock"


class RunFolderLocked(NeuralCTError, RuntimeError):
    """Another live process writes the run folder (its lock file names the pid)."""


class RunLock:
    """An exclusive lock on a run folder, as a context manager: `run.lock` holding this process's pid.

    The lock file is written whole under a temporary name and then hard-linked to `run.lock`, which
    fails if the name exists: as atomic and exclusive as `O_EXCL`, and never seen empty. A lock
    whose pid is not alive is stale and taken over. The folder is created (with its parents) when
    missing, and removed again on release if it is still empty (a run that failed before writing
    anything leaves nothing behind).

    Raises:
        RunFolderLocked: a live process holds the folder.
        InvalidInputError: the folder's path is a file.
    """

    def __init__(self, run_dir: Path | str) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK
        self.created = False

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exception: object) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock (see the class docstring)."""
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise InvalidInputError(f"the run folder {self.run_dir} is a file, not a folder")
        self.created = not self.run_dir.exists()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        mine = self.path.with_name(f"{LOCK}.{os.getpid()}")
        mine.unlink(missing_ok=True)  # one left by a killed process of this pid may be a link to run.lock
        mine.write_text(f"{os.getpid()}\n")
        try:
            for _ in range(3):  # a stale lock removed, then (rarely) taken first by another process
                try:
                    os.link(mine, self.path)
                    return
                except FileExistsError:
                    self._remove_if_stale()
            raise self._held(_holder(self.path))
        finally:
            mine.unlink()

    def release(self) -> None:
        """Remove the lock if this process holds it, and the folder if it created it and it is empty."""
        if _holder(self.path) == os.getpid():
            self.path.unlink()
        if self.created and self.run_dir.is_dir() and not any(self.run_dir.iterdir()):
            self.run_dir.rmdir()

    def _remove_if_stale(self) -> None:
        """Remove the lock of a process that is not alive; raise if its holder lives."""
        holder = _holder(self.path)
        if holder is not None and _alive(holder):
            raise self._held(holder)
        grave = self.path.with_name(f"{LOCK}.{os.getpid()}.stale")
        try:
            os.rename(self.path, grave)  # atomic: of two processes clearing it, one moves it
        except FileNotFoundError:
            return
        if _holder(grave) != holder:  # the other process's fresh lock was moved: give it back
            os.rename(grave, self.path)
            raise self._held(_holder(self.path))
        grave.unlink()

    def _held(self, pid: int | None) -> RunFolderLocked:
        return RunFolderLocked(
            f"{self.run_dir} is in use by process {pid} (it holds {self.path}); wait for it to end, or "
            f"delete {self.path} if no process writes this folder any more"
        )


def _holder(path: Path) -> int | None:
    """The pid in lock file `path`, or `None` when there is none (missing, or not a pid)."""
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _alive(pid: int) -> bool:
    """Whether process `pid` exists (a process of another user counts)."""
    if os.name != "posix":
        return True  # os.kill(pid, 0) would end the process on Windows: never take a lock over there
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user's process
        pass
    return True


def write_atomically(path: Path, data: bytes, *, previous: Path | None = None) -> None:
    """Replace `path` with `data` whole or not at all; keep the replaced file as `previous` if given.

    Raises:
        OSError: the folder cannot be written (read-only, full), naming `path`.
    """
    temporary = path.with_name(path.name + ".tmp")
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if previous is not None and path.exists():
            os.replace(path, previous)
        os.replace(temporary, path)
        _sync_folder(path.parent)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if isinstance(error, OSError) and error.filename is None:  # a write or fsync names no file
            raise OSError(error.errno, error.strerror, str(path)) from error
        raise


def _sync_folder(folder: Path) -> None:
    """Flush a folder's entries to disk: a rename survives a power cut only once they are."""
    if os.name == "posix":
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def append_metrics(run_dir: Path, row: dict) -> None:
    """Append an epoch's row to `metrics.csv` and `metrics.jsonl`, flushed to disk."""
    path = run_dir / "metrics.csv"
    text = {"metrics.csv": _csv_text([row], header=not path.exists()), "metrics.jsonl": json.dumps(row) + "\n"}
    for name, lines in text.items():
        with open(run_dir / name, "a", newline="") as handle:
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())


def recover_metrics(run_dir: Path, epochs: int) -> int:
    """Keep the rows of epochs `1..epochs` that are intact in either metrics file (a row torn by a
    kill is dropped; the JSON one wins where both hold it), and replace both files atomically with
    them. Returns the number of rows kept."""
    rows = {**_csv_rows(run_dir / "metrics.csv"), **_jsonl_rows(run_dir / "metrics.jsonl")}
    kept = [rows[epoch] for epoch in sorted(rows) if epoch <= epochs]
    jsonl = "".join(json.dumps(row) + "\n" for row in kept)
    write_atomically(run_dir / "metrics.jsonl", jsonl.encode())
    write_atomically(run_dir / "metrics.csv", _csv_text(kept, header=True).encode())
    return len(kept)


def _csv_text(rows: list[dict], header: bool) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, restval="")
    if header:
        writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _jsonl_rows(path: Path) -> dict[int, dict]:
    rows = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("epoch"), int):
            rows[row["epoch"]] = row
    return rows


def _csv_rows(path: Path) -> dict[int, dict]:
    rows = {}
    for record in csv.DictReader(io.StringIO(path.read_text() if path.exists() else "")):
        if None in record or None in record.values():
            continue  # torn: fewer or more cells than the header names
        try:
            row = {name: _cell(text) for name, text in record.items()}
        except ValueError:
            continue
        if isinstance(row.get("epoch"), int):
            rows[row["epoch"]] = row
    return rows


def _cell(text: str) -> int | float | None:
    """A CSV cell as written from a row: empty for `None`, else an int or a float's repr."""
    if text == "":
        return None
    try:
        return int(text)
    except ValueError:
        return float(text)

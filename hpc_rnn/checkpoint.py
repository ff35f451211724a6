"""Checkpoints: one directory per step, written whole or not at all, newest valid one found.

    RUN/checkpoints/step-000001234/state.pt   model, optimizer, scheduler, RNG, position, config
    RUN/checkpoints/step-000001234/COMPLETE   {"step", "sha256" of state.pt}: written last
    RUN/checkpoints/best.json                 {"step", "val_loss"}: the best kept by validation

A step directory is assembled under a temporary name and renamed into place only after its
files and marker are synced, so a job killed mid-write leaves either the whole checkpoint or a
temporary directory that is ignored and later removed. Loading uses `weights_only=True`: a
checkpoint is data and never runs code.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hpc_rnn import atomic
from hpc_rnn.cli import UserError
from hpc_rnn.shards import file_sha256

CHECKPOINTS = "checkpoints"
STATE_FILE = "state.pt"
MARKER = "COMPLETE"
BEST_FILE = "best.json"
_PREFIX = "step-"


class CheckpointError(UserError):
    """A checkpoint that cannot be used; the message says which and why."""


def step_dir(run_dir: str | os.PathLike, step: int) -> Path:
    return Path(run_dir) / CHECKPOINTS / f"{_PREFIX}{step:09d}"


def save(
    run_dir: str | os.PathLike,
    step: int,
    state: dict[str, Any],
    *,
    val_loss: float | None = None,
    keep_last: int = 3,
) -> Path:
    """Write the checkpoint of `step`, update the best one, and prune old ones."""
    final = step_dir(run_dir, step)
    root = final.parent
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        state_path = tmp / STATE_FILE
        with open(state_path, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        atomic.write_json(tmp / MARKER, {"step": step, "sha256": file_sha256(state_path)})
        atomic.fsync_dir(tmp)
        # A resumed run can reach a step it had saved before it was stopped: the new one wins.
        atomic.publish_dir(tmp, final, overwrite=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if val_loss is not None:
        best = read_best(run_dir)
        if best is None or val_loss < best["val_loss"]:
            atomic.write_json(root / BEST_FILE, {"step": step, "val_loss": val_loss})
    prune(run_dir, keep_last)
    return final


def read_best(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    path = Path(run_dir) / CHECKPOINTS / BEST_FILE
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def complete(run_dir: str | os.PathLike) -> list[Path]:
    """Step directories that carry the completion marker, newest first."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    dirs = [p for p in root.glob(f"{_PREFIX}*") if (p / MARKER).is_file()]
    return sorted(dirs, key=lambda p: p.name, reverse=True)


def prune(run_dir: str | os.PathLike, keep_last: int) -> None:
    """Keep the newest `keep_last` checkpoints and the best; remove the rest and stale temps."""
    root = Path(run_dir) / CHECKPOINTS
    best = read_best(run_dir)
    keep = {p.name for p in complete(run_dir)[: max(keep_last, 1)]}
    if best is not None:
        keep.add(step_dir(run_dir, int(best["step"])).name)
    for p in root.iterdir():
        stale_temp = p.name.startswith(".") and ".tmp-" in p.name and not _pid_alive(p.name)
        if (p.name.startswith(_PREFIX) and p.name not in keep) or stale_temp:
            shutil.rmtree(p, ignore_errors=True)


def _pid_alive(name: str) -> bool:
    pid = name.rsplit("-", 1)[-1]
    return pid.isdigit() and int(pid) == os.getpid()


def load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a step directory after checking its marker and checksum."""
    path = Path(path)
    marker = path / MARKER
    if not marker.is_file():
        raise CheckpointError(f"checkpoint {path} is incomplete (no {MARKER} marker)")
    try:
        with open(marker, encoding="utf-8") as f:
            expected = json.load(f)["sha256"]
    except (OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"checkpoint {path} has an unreadable marker: {exc}") from None
    state_path = path / STATE_FILE
    if not state_path.is_file() or file_sha256(state_path) != expected:
        raise CheckpointError(
            f"checkpoint {path} is corrupt (state.pt does not match its checksum)"
        )
    try:
        return torch.load(state_path, map_location=map_location, weights_only=True)
    except Exception as exc:  # a pickle that is not plain data, or a torch version mismatch
        raise CheckpointError(f"checkpoint {path} cannot be loaded safely: {exc}") from None


def load_latest(
    run_dir: str | os.PathLike,
    map_location: str | torch.device = "cpu",
    warn: Callable[[str], None] = lambda m: warnings.warn(m, stacklevel=2),
) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint that loads; broken ones are skipped with a warning."""
    for path in complete(run_dir):
        try:
            return path, load(path, map_location)
        except CheckpointError as exc:
            warn(f"skipping {exc}")
    return None


def resolve(path: str | os.PathLike) -> Path:
    """A step directory as given, or the newest complete one of a run directory."""
    path = Path(path)
    if (path / MARKER).is_file() or (path / STATE_FILE).is_file():
        return path
    found = complete(path)
    if not found:
        raise CheckpointError(f"no complete checkpoint in {path}: give a run or step directory")
    return found[0]


def rng_state() -> dict[str, Any]:
    """Every random generator training touches, in a form `weights_only` loading accepts."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy(), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])

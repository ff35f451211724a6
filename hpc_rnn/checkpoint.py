"""Checkpoints: one directory per step, written whole or not at all, newest valid one found.

    RUN/checkpoints/step-000001234/state.pt   model, optimizer, scheduler, RNG, position, config
    RUN/checkpoints/step-000001234/COMPLETE   {"step", "sha256" of state.pt}: written last
    RUN/checkpoints/best.json                 {"step", "val_loss"}: the best kept by validation

A step directory is assembled under a temporary name and renamed into place only after its
files and marker are synced, so a job killed mid-write leaves either the whole checkpoint or a
temporary directory that is ignored and later removed. Loading uses `weights_only=True`: a
checkpoint is data and never runs code, which holds only from torch 2.6 on (CVE-2025-32434), so
older versions are refused.

Pruning deletes only checkpoints that verify (marker and checksum), never the one just written
and never the newest `keep_last` that verify: a run whose newer checkpoints are corrupt keeps
its good ones. Corrupt ones are left for the user to inspect; loading skips them.
"""

from __future__ import annotations

import json
import os
import random
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hpc_rnn import atomic
from hpc_rnn.cli import UserError

CHECKPOINTS = "checkpoints"
STATE_FILE = "state.pt"
MARKER = "COMPLETE"
FILES = (STATE_FILE, MARKER)  # what a step directory holds: all that pruning may delete
BEST_FILE = "best.json"
_PREFIX = "step-"
# torch.load(weights_only=True) can be made to run code before 2.6 (CVE-2025-32434).
SAFE_LOAD_TORCH = (2, 6)


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
    try:
        # A resumed run can reach a step it had saved before it was stopped: the new one wins.
        with atomic.staged_dir(final, replace=FILES) as tmp:
            torch.save(state, tmp / STATE_FILE)
            digest = atomic.file_sha256(tmp / STATE_FILE)
            atomic.write_json(tmp / MARKER, {"step": step, "sha256": digest})
    except (OSError, RuntimeError) as exc:  # torch.save reports a failed write as RuntimeError
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[-1][:200]
        raise CheckpointError(
            f"could not write checkpoint {final} ({reason}): is the disk full or the path not "
            f"writable? The checkpoints already in {root} are intact; free space and run again"
        ) from None
    if val_loss is not None:
        best = read_best(run_dir)
        if best is None or val_loss < best["val_loss"]:
            atomic.write_json(root / BEST_FILE, {"step": step, "val_loss": val_loss})
    prune(run_dir, keep_last, written=final)
    return final


def read_best(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    path = Path(run_dir) / CHECKPOINTS / BEST_FILE
    try:
        with open(path, encoding="utf-8") as f:
            best = json.load(f)
        return {"step": int(best["step"]), "val_loss": float(best["val_loss"])}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        # Written atomically, so only a hand edit breaks it; the next validation rewrites it.
        return None


def marked_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """Step directories that carry the completion marker, newest first (not yet verified)."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    dirs = [p for p in root.glob(f"{_PREFIX}*") if (p / MARKER).is_file()]
    return sorted(dirs, key=lambda p: p.name, reverse=True)


def verify(path: str | os.PathLike) -> str | None:
    """Why the step directory `path` cannot be loaded, or None when its marker and checksum hold."""
    path = Path(path)
    try:
        with open(path / MARKER, encoding="utf-8") as f:
            expected = json.load(f)["sha256"]
    except FileNotFoundError:
        return f"checkpoint {path} is incomplete (no {MARKER} marker)"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"checkpoint {path} has an unreadable marker: {exc}"
    state_path = path / STATE_FILE
    if not state_path.is_file() or atomic.file_sha256(state_path) != expected:
        return f"checkpoint {path} is corrupt (state.pt does not match its checksum)"
    return None


def prune(run_dir: str | os.PathLike, keep_last: int, *, written: Path | None = None) -> list[Path]:
    """Remove verified checkpoints beyond the newest `keep_last` verified ones, and stale temps.

    Kept whatever happens: `written` (the checkpoint just saved), the best by validation, and
    every checkpoint that fails to verify (evidence; loading skips it). Returns what was removed.
    """
    root = Path(run_dir) / CHECKPOINTS
    best = read_best(run_dir)
    keep = {written.name} if written is not None else set()
    if best is not None:
        keep.add(step_dir(run_dir, int(best["step"])).name)
    good = 0
    removed = []
    for path in marked_checkpoints(run_dir):
        if verify(path) is not None:
            continue
        good += 1
        if good > max(keep_last, 1) and path.name not in keep:
            # Renamed first, so a kill mid-delete leaves a temporary, not a half checkpoint.
            doomed = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, doomed)
            atomic.remove_ours(doomed, FILES)
            removed.append(path)
    # Temporaries of this module's own names whose writer is gone; the run lock guarantees
    # that no other live process writes here.
    for path in root.glob(f".{_PREFIX}*"):
        pid = _temp_writer_pid(path.name)
        if pid not in (None, os.getpid()):
            atomic.remove_ours(path, (*FILES, atomic.temp_name(MARKER, pid)))
    return removed


def _temp_writer_pid(name: str) -> int | None:
    """The PID in a temporary name `.step-N.tmp-PID` or `.step-N.old-PID`, else None."""
    match = re.fullmatch(rf"\.{_PREFIX}\d+\.(?:tmp|old)-(\d+)", name)
    return int(match.group(1)) if match else None


def safe_loading_holds(version: str = torch.__version__) -> bool:
    """Whether this torch's `weights_only=True` really refuses code (2.6 and later)."""
    match = re.match(r"(\d+)\.(\d+)", version)
    return match is not None and (int(match.group(1)), int(match.group(2))) >= SAFE_LOAD_TORCH


def load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a step directory after checking its marker and checksum."""
    path = Path(path)
    if not safe_loading_holds(torch.__version__):
        raise CheckpointError(
            f"torch {torch.__version__} cannot load checkpoints safely (its weights_only "
            "loading can run code, CVE-2025-32434): install torch>=2.6"
        )
    problem = verify(path)
    if problem is not None:
        raise CheckpointError(problem)
    try:
        return torch.load(path / STATE_FILE, map_location=map_location, weights_only=True)
    except Exception as exc:  # a pickle that is not plain data, or a torch version mismatch
        # torch's own message advises weights_only=False, which would run the file's code.
        raise CheckpointError(
            f"checkpoint {path} cannot be loaded safely ({type(exc).__name__}): it holds "
            "something other than tensors and plain data; do not load it"
        ) from None


def load_latest(
    run_dir: str | os.PathLike,
    map_location: str | torch.device = "cpu",
    warn: Callable[[str], None] = lambda m: warnings.warn(m, stacklevel=2),
) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint that loads; broken ones are skipped with a warning."""
    for path in marked_checkpoints(run_dir):
        try:
            return path, load(path, map_location)
        except CheckpointError as exc:
            warn(f"skipping {exc}")
    return None


def load_given(
    path: str | os.PathLike,
    map_location: str | torch.device = "cpu",
    warn: Callable[[str], None] = lambda m: warnings.warn(m, stacklevel=2),
) -> tuple[Path, dict[str, Any]]:
    """What a user names: a run directory (its newest checkpoint that loads), a step directory,
    or the `state.pt` inside one."""
    path = Path(path)
    if path.name == STATE_FILE and path.is_file():
        path = path.parent
    if (path / MARKER).is_file() or (path / STATE_FILE).is_file():
        return path, load(path, map_location)
    if not path.exists():
        raise CheckpointError(f"{path} does not exist: give a run directory or a checkpoint")
    found = load_latest(path, map_location, warn)
    if found is None:
        raise CheckpointError(
            f"no loadable checkpoint in {path}: give a run directory or a step directory "
            f"({CHECKPOINTS}/{_PREFIX}N)"
        )
    return found


def load_weights(model: torch.nn.Module, state: dict[str, Any], path: str | os.PathLike) -> None:
    """The checkpoint's weights into `model`; CheckpointError when they do not fit it (written
    by a version of hpc_rnn whose model had other parameters)."""
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1].strip()
        raise CheckpointError(
            f"checkpoint {path} holds weights that do not fit this version's model ({first}): "
            "use the hpc_rnn version that wrote it, or train a new --run"
        ) from None


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

"""One training per run directory: a lock file that names its holder.

`RUN/.lock` is created with O_CREAT | O_EXCL, which is atomic on local filesystems and on the
shared ones clusters use (NFSv3 and later, Lustre, GPFS), where `flock`/`fcntl` locks may be
unsupported or not seen across nodes. That exclusive create is the only thing relied on. The
file holds the holder's host, PID, process start time and Slurm job, so that

- a second start fails at once, naming who holds the run;
- a lock whose holder is gone is broken: on the same host when that PID no longer runs (or
  now belongs to another process, by its start time), anywhere when it was this very Slurm job
  and an earlier start of it (Slurm kills a requeued job's processes before it starts again).

A lock held on another host by a process that is not this job cannot be checked from here; the
error says how to remove it once the user knows that process is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from hpc_rnn.cli import UserError, say

LOCK_FILE = ".lock"


class RunLocked(UserError):
    """Another live process trains in this run directory."""


def _start_time(pid: int) -> str | None:
    """The kernel's start time of `pid` (field 22 of /proc/PID/stat), None if it is not running."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def holder_info() -> dict[str, Any]:
    """What a lock taken by this process says about it."""
    pid = os.getpid()
    return {
        "host": socket.gethostname(),
        "pid": pid,
        "start_time": _start_time(pid),
        "slurm_job": os.environ.get("SLURM_JOB_ID") or None,
        "slurm_restart": os.environ.get("SLURM_RESTART_COUNT", "0"),
        "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def is_stale(holder: dict[str, Any], me: dict[str, Any]) -> bool:
    """Whether the process `holder` describes is certainly gone, as seen from `me`."""
    same_job = holder.get("slurm_job") and holder.get("slurm_job") == me.get("slurm_job")
    if same_job and holder.get("slurm_restart") != me.get("slurm_restart"):
        return True
    if holder.get("host") != me["host"]:
        return False
    pid = holder.get("pid")
    if not isinstance(pid, int):
        return False
    started = _start_time(pid)
    return started is None or started != holder.get("start_time")


def describe(holder: dict[str, Any]) -> str:
    job = f", Slurm job {holder['slurm_job']}" if holder.get("slurm_job") else ""
    return f"host {holder.get('host')}, PID {holder.get('pid')}{job}, since {holder.get('since')}"


class RunLock:
    """Held from `acquire()` to `release()`; release removes the file only if it is still ours."""

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self.me = holder_info()
        self.held = False

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):  # a broken stale lock may be retaken by a racing start
            if self._create():
                self.held = True
                return
            holder = self._read()
            for _ in range(20):
                if holder is not None:
                    break
                # Created but not yet written by its holder, or left empty by a crash mid-write.
                time.sleep(0.1)
                holder = self._read()
            if holder is not None and not is_stale(holder, self.me):
                raise RunLocked(
                    f"{self.path.parent} is in use by another training ({describe(holder)}): "
                    "wait for it to end, or choose another --run; if you know that process is "
                    f"gone, remove {self.path}"
                )
            self._break(holder)
        raise RunLocked(f"could not take {self.path}: other starts keep taking it; try again")

    def release(self) -> None:
        if self.held and self._read() == self.me:
            self.path.unlink(missing_ok=True)
        self.held = False

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(self.me, f)
            f.flush()
            os.fsync(f.fileno())
        return True

    def _read(self) -> dict[str, Any] | None:
        try:
            holder = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return holder if isinstance(holder, dict) else None

    def _break(self, holder: dict[str, Any] | None) -> None:
        """Remove a stale lock, but only the one judged stale: rename it aside (atomic), then put
        it back if what was moved is not what was read (another start took the lock meanwhile)."""
        aside = self.path.with_name(f"{LOCK_FILE}.stale-{os.getpid()}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        try:
            moved = json.loads(aside.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            moved = None
        if moved != holder:
            with contextlib.suppress(FileExistsError):
                os.link(aside, self.path)  # put it back unless a new lock is already there
        aside.unlink(missing_ok=True)
        if moved == holder and holder is not None:
            say(f"warning: removed the stale lock of a training that is gone ({describe(holder)})")

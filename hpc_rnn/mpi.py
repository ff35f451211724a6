"""MPI ranks for preprocessing: COMM_WORLD under a launcher, a stand-in alone.

Training's ranks (torch.distributed) are in `distributed.py`; this module keeps MPI apart so
that preprocessing needs neither torch nor, when run alone, an MPI library.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from hpc_rnn.cli import UserError

T = TypeVar("T")

# Variables that MPI launchers (MPICH's hydra, Open MPI, PMIx, srun) set in every rank.
_MPI_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS")


class SingleProcess:
    """The subset of an mpi4py communicator the project uses, for a run without MPI."""

    rank = 0
    size = 1

    def allgather(self, obj: T) -> list[T]:
        return [obj]

    def gather(self, obj: T, root: int = 0) -> list[T]:
        return [obj]

    def bcast(self, obj: T, root: int = 0) -> T:
        return obj

    def barrier(self) -> None:
        pass


def _launched_tasks() -> int:
    """How many processes the launcher says it started (1 when not under a launcher)."""
    for var in (*_MPI_SIZE_VARS, "SLURM_STEP_NUM_TASKS"):
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 1:
            return int(value)
    return 1


def mpi_world() -> Any:
    """COMM_WORLD when started by an MPI launcher or srun, else a single-process stand-in.

    MPI is not initialised at all in a plain run, so a laptop without an MPI library works.
    A launcher that started N > 1 tasks which each see a world of one (srun without the right
    --mpi plugin, or an MPI library that does not match the launcher) is an error, not N
    copies of the same work.
    """
    tasks = _launched_tasks()
    if tasks == 1:
        return SingleProcess()
    try:
        from mpi4py import MPI
    except Exception as exc:  # ImportError, or RuntimeError when no MPI library loads
        raise UserError(
            f"started as {tasks} tasks but mpi4py cannot load an MPI library ({exc}): "
            "pip install mpich, or load your cluster's MPI module"
        ) from None
    comm = MPI.COMM_WORLD
    if comm.Get_size() == 1:
        raise UserError(
            f"the launcher started {tasks} tasks but each sees an MPI world of 1: under Slurm use "
            "`srun --mpi=pmi2` with MPICH (or your cluster's MPI), or `mpiexec -n N` in the allocation"
        )
    return comm


class RanksFailed(UserError):
    """A step failed on some rank of several; every rank raises this, so none is left waiting."""


def agree(comm: Any, fn: Callable[[], T]) -> T:
    """Run `fn` on every rank; if it raises on any rank, raise on all of them.

    Without this an exception on one rank leaves the others waiting in the next collective for
    ever. Alone, `fn`'s exception is raised as it is. Among several ranks every rank raises
    `RanksFailed` with the first failing rank's message: a UserError's own message, or, for
    anything else (a bug), the exception's type and text, its traceback printed by the rank
    that saw it.
    """
    try:
        result, failure = fn(), None
    except Exception as exc:
        result, failure = None, exc
    if comm.size == 1:
        if failure is not None:
            raise failure
        return result  # type: ignore[return-value]
    report = None
    if failure is not None:
        report = str(failure)
        if not isinstance(failure, UserError):
            traceback.print_exception(failure, file=sys.stderr)
            report = f"rank {comm.rank} of {comm.size} failed: {_describe(failure)}"
    reports = [r for r in comm.allgather(report) if r is not None]
    if reports:
        raise RanksFailed(reports[0]) from failure
    return result  # type: ignore[return-value]


@contextmanager
def stop_all_on_error(comm: Any) -> Iterator[None]:
    """End every rank (MPI_Abort) when an exception escapes `agree` on one rank of several.

    `agree` covers the work between collectives; this is for what it cannot catch (Ctrl-C or
    another signal turned exception on one rank, a failure inside a collective), which would
    otherwise leave the other ranks waiting for ever. Under Slurm, `srun --kill-on-bad-exit=1`
    does the same for a rank that dies outright.
    """
    try:
        yield
    except RanksFailed:
        raise
    except BaseException as exc:
        if comm.size == 1:
            raise
        if not isinstance(exc, (UserError, KeyboardInterrupt)):
            traceback.print_exception(exc, file=sys.stderr)
        print(
            f"error: rank {comm.rank} of {comm.size}: {_describe(exc)}; stopping every rank",
            file=sys.stderr,
            flush=True,
        )
        comm.Abort(1)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, UserError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

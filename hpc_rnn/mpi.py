"""MPI ranks for preprocessing: COMM_WORLD under a launcher, a stand-in alone.

Training's ranks (torch.distributed) are in `distributed.py`; this module keeps MPI apart so
that preprocessing needs neither torch nor, when run alone, an MPI library.
"""

from __future__ import annotations

import os
from collections.abc import Callable
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


def agree(comm: Any, fn: Callable[[], T]) -> T:
    """Run `fn` on every rank; if it raises a UserError on any rank, raise it on all of them.

    Without this a mistake seen by one rank leaves the others waiting in the next collective.
    """
    try:
        result, message = fn(), None
    except UserError as exc:
        result, message = None, str(exc)
    messages = [m for m in comm.allgather(message) if m is not None]
    if messages:
        raise UserError(messages[0])
    return result  # type: ignore[return-value]

"""Who am I in training: rank, world size, local rank and device from the launcher (torchrun,
srun, submitit, or none), and the process group up and down."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from hpc_rnn.cli import UserError


@dataclass(frozen=True)
class World:
    rank: int
    size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(*names: str) -> int | None:
    for name in names:
        value = os.environ.get(name, "")
        if value.lstrip("-").isdigit():
            return int(value)
    return None


def first_host(nodelist: str) -> str:
    """The first host of a Slurm node list ('gpu[03-04,07],cpu1' -> 'gpu03')."""
    head = nodelist.split(",")[0] if "[" not in nodelist.split(",")[0] else nodelist.split("]")[0]
    if "[" not in head:
        return head
    prefix, ranges = head.split("[", 1)
    return prefix + ranges.split(",")[0].split("-")[0]


def process_layout() -> tuple[int, int, int, str, int]:
    """(rank, world size, local rank, master address, master port) from the launcher.

    torchrun's variables win; then a Slurm job step (srun, which submitit uses too), where the
    master is the step's first host and the port is derived from the job id so that two jobs
    sharing a node do not collide; otherwise a single process.
    """
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return (
            int(os.environ["RANK"]),
            int(os.environ["WORLD_SIZE"]),
            _env_int("LOCAL_RANK") or 0,
            os.environ.get("MASTER_ADDR", "127.0.0.1"),
            _env_int("MASTER_PORT") or 29500,
        )
    ntasks = _env_int("SLURM_STEP_NUM_TASKS")
    if ntasks is not None and ntasks > 1 and "SLURM_PROCID" in os.environ:
        nodes = os.environ.get("SLURM_STEP_NODELIST") or os.environ.get("SLURM_JOB_NODELIST", "")
        job = _env_int("SLURM_JOB_ID") or 0
        return (
            int(os.environ["SLURM_PROCID"]),
            ntasks,
            _env_int("SLURM_LOCALID") or 0,
            os.environ.get("MASTER_ADDR") or first_host(nodes) or "127.0.0.1",
            _env_int("MASTER_PORT") or 20000 + job % 20000,
        )
    return 0, 1, 0, "127.0.0.1", 0


def init_world(device: str = "auto", timeout_s: float = 600.0) -> World:
    """Join the process group (NCCL on GPUs, gloo on CPU) and pick this rank's device.

    The timeout bounds how long ranks wait for a peer that died, so a crash ends the job with
    an error instead of holding the allocation until its time limit.
    """
    rank, size, local_rank, addr, port = process_layout()
    dev = pick_device(device, local_rank)
    use_cuda = dev.type == "cuda"
    if use_cuda:
        torch.cuda.set_device(dev)
    if size > 1 and not dist.is_initialized():
        try:
            dist.init_process_group(
                backend="nccl" if use_cuda else "gloo",
                init_method=f"tcp://{addr}:{port}",
                rank=rank,
                world_size=size,
                timeout=timedelta(seconds=timeout_s),
            )
        except dist.DistError as exc:  # a busy port, a wrong address, a rank that never came
            first = (
                str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            )
            raise UserError(
                f"rank {rank} could not join the process group at {addr}:{port} ({first}): if "
                "the port is busy, set MASTER_PORT to a free one; check that every rank started"
            ) from None
    return World(rank, size, local_rank, dev)


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """ "auto": this rank's GPU if there is one, else the CPU; "cpu"; "cuda"."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(
                "--device cuda asked for, but no CUDA device is visible: use --device cpu"
            )
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if name != "cpu":
        raise UserError(f"--device must be auto, cpu or cuda, got {name!r}")
    return torch.device("cpu")


def autocast(device: torch.device) -> torch.autocast:
    """bf16 autocast on a GPU (no loss scaling needed), plain float32 on the CPU."""
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")


def close_world() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_sum(values: torch.Tensor, world: World) -> torch.Tensor:
    """Sum a tensor over ranks (a copy on one rank)."""
    if world.size == 1:
        return values
    out = values.clone()
    dist.all_reduce(out)
    return out


def any_rank(flags: list[bool], world: World) -> list[bool]:
    """Each flag true on every rank if true on any: how ranks agree to act at the same step."""
    if world.size == 1:
        return flags
    t = torch.tensor([1.0 if f else 0.0 for f in flags], device=world.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(x) for x in t.tolist()]


def all_min(value: torch.Tensor, world: World) -> torch.Tensor:
    """The minimum of a tensor over ranks (a copy on one rank)."""
    if world.size == 1:
        return value
    out = value.clone()
    dist.all_reduce(out, op=dist.ReduceOp.MIN)
    return out


def raise_together(world: World, fn: Callable[[], object]) -> None:
    """Run `fn` on every rank; a UserError on any rank is raised on all of them, so that no
    rank goes on to wait for the others in a collective."""
    try:
        fn()
        failed = None
    except UserError as exc:
        failed = exc
    if any_rank([failed is not None], world)[0]:
        raise failed or UserError(
            f"rank {world.rank}: another rank refused to start (see its error)"
        )


def barrier(world: World) -> None:
    if world.size > 1:
        dist.barrier()


def slurm_job_id() -> str | None:
    """The Slurm job this process belongs to (what `scontrol requeue` takes), if any."""
    return os.environ.get("SLURM_JOB_ID") or None


def slurm_restart_count() -> int:
    """How often Slurm has restarted this job (requeues), 0 outside Slurm."""
    return _env_int("SLURM_RESTART_COUNT") or 0

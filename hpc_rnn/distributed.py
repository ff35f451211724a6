"""Who am I in training: rank, world size, local rank and device from the launcher (torchrun,
srun, submitit, or none), and the process group up and down."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

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


# Rendezvous ports derived from the job when no directory is shared: below Linux's ephemeral
# range (32768-60999), so no outgoing connection of another program can be holding one.
PORT_BASE, PORT_SPAN = 20000, 12768


def derived_port(job: int, step: int) -> int:
    """A port for job step (job, step): two steps of one job differ, and two jobs only collide
    when their ids differ by a multiple of PORT_SPAN (the rendezvous file avoids even that)."""
    return PORT_BASE + (job + step * 7919) % PORT_SPAN


def tasks_per_node(spec: str) -> list[int]:
    """Slurm's SLURM_STEP_TASKS_PER_NODE ('4(x2),3') as one count per node ([4, 4, 3])."""
    out: list[int] = []
    for part in filter(None, spec.split(",")):
        count, _, times = part.partition("(x")
        out += [int(count)] * int(times.rstrip(")") or 1)
    return out


def process_layout() -> tuple[int, int, int, str, int]:
    """(rank, world size, local rank, master address, master port) from the launcher.

    torchrun's variables win (torchrun and submitit's local executor set all of them); then a
    Slurm job step (srun), where the master is the step's first host. A Slurm step ignores
    MASTER_ADDR and MASTER_PORT: srun does not set them, so any there came from the submitting
    shell (sbatch exports it) and would make every job from that shell meet on one port. The
    port is HPC_RNN_MASTER_PORT if set (a deliberate choice, which no launcher makes), else
    the first of SLURM_STEP_RESV_PORTS when the cluster reserves ports for steps (srun
    --resv-ports: Slurm guarantees no other step on the node holds it), else derived from the
    job and step id. Otherwise a single process.
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
        reserved = os.environ.get("SLURM_STEP_RESV_PORTS", "").split(",")[0].split("-")[0]
        port = _env_int("HPC_RNN_MASTER_PORT") or (
            int(reserved)
            if reserved.isdigit()
            else derived_port(_env_int("SLURM_JOB_ID") or 0, _env_int("SLURM_STEP_ID") or 0)
        )
        return (
            int(os.environ["SLURM_PROCID"]),
            ntasks,
            _env_int("SLURM_LOCALID") or 0,
            first_host(nodes) or "127.0.0.1",
            port,
        )
    return 0, 1, 0, "127.0.0.1", 0


def master_address(name: str) -> str:
    """`name` if it resolves; else, under Slurm, the node's NodeAddr (`scontrol show node`).

    A node name that does not resolve would make c10d retry "Name or service not known" for
    minutes; this answers within seconds, with an address or one clear error.
    """
    try:
        socket.getaddrinfo(name, None)
        return name
    except OSError:
        pass
    try:
        shown = subprocess.run(
            ["scontrol", "show", "node", "-o", name],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        shown = ""
    found = re.search(r"\bNodeAddr=(\S+)", shown)
    if found and found.group(1) != name:
        try:
            socket.getaddrinfo(found.group(1), None)
            return found.group(1)
        except OSError:
            pass
    raise UserError(
        f"the rendezvous host {name!r} (the job's first node) does not resolve"
        + (f", nor its NodeAddr {found.group(1)!r}" if found else "")
        + ": add it to DNS or /etc/hosts on every node"
    )


def rendezvous_file(directory: str | os.PathLike) -> Path:
    """Where rank 0 of this Slurm step publishes its rendezvous address: one file per job,
    attempt (a requeued job runs again under the same id) and step."""
    job, step = os.environ.get("SLURM_JOB_ID", "0"), os.environ.get("SLURM_STEP_ID", "0")
    return Path(directory) / f".rendezvous-{job}.{slurm_restart_count()}.{step}"


def failure_note(directory: str | os.PathLike, port: int) -> Path:
    """Where rank 0 of torchrun's layout tells the others that it could not listen on `port`.
    That layout names no job, so the note is per port and carries the time it was written."""
    return Path(directory) / f".rendezvous-failed-{port}"


# How often a rank waiting for rank 0 looks at what rank 0 published, in seconds.
POLL_S = 0.1
# A failure note counts for a rank started at most this long after it was written: the ranks
# of one launch start within a second or two of each other (by clocks that NTP keeps within
# milliseconds), and rank 0 fails only after importing torch; an older note is a past launch's.
NOTE_SLACK_S = 5.0


def publish(path: Path, text: str) -> None:
    """Write one line to `path` for the other ranks, which never read half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text + "\n")
    tmp.replace(path)


def process_started() -> float:
    """When this process started, in seconds since the epoch (Linux's /proc)."""
    ticks = int(Path("/proc/self/stat").read_text().rpartition(")")[2].split()[19])
    boot = next(
        line.split()[1]
        for line in Path("/proc/stat").read_text().splitlines()
        if line.startswith("btime ")
    )
    return float(boot) + ticks / os.sysconf("SC_CLK_TCK")


def read_failure(note: Path, since: float) -> str | None:
    """Rank 0's reason in `note` if it was written after `since` (less NOTE_SLACK_S), else None."""
    try:
        written, _, reason = note.read_text().strip().partition(" ")
        return reason if float(written) >= since - NOTE_SLACK_S else None
    except (OSError, ValueError):  # no note, or one being replaced
        return None


def first_line(exc: BaseException) -> str:
    """The start of an exception's message, short enough for an error line."""
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


@dataclass(frozen=True)
class Meeting:
    """Where the ranks meet (port 0: one rank 0 gets from the kernel), and the error each rank
    ends with when they cannot: one line on every rank, naming the variable that sets the port."""

    rank: int
    size: int
    addr: str
    port: int
    timeout_s: float
    port_variable: str

    @property
    def timeout(self) -> timedelta:
        return timedelta(seconds=self.timeout_s)

    def could_not_join(self, why: str) -> UserError:
        where = f"{self.addr}:{self.port}" if self.port else self.addr
        return UserError(f"rank {self.rank} could not join the process group at {where}{why}")

    def failed(self, exc: BaseException) -> UserError:
        return self.could_not_join(
            f" ({first_line(exc)}): if the port is busy, set {self.port_variable} to a free "
            "one; check that every rank started"
        )

    def master_failed(self, reason: str) -> UserError:
        return self.could_not_join(
            f": rank 0 could not listen there ({reason}): if the port is busy, set "
            f"{self.port_variable} to a free one"
        )

    def no_answer(self) -> UserError:
        return self.could_not_join(
            f": no answer from rank 0 within {self.timeout_s:.0f} s (--dist-timeout-s): if "
            f"another program holds the port, set {self.port_variable} to a free one; check "
            "that rank 0 started"
        )


# How long rank 0, which could not listen, waits for the other ranks to read why, at most, in
# seconds; and how long it then gives them to print it.
READERS_WAIT_S = 60.0
READERS_GRACE_S = 1.0


def read_mark(path: Path, rank: int) -> Path:
    """The file by which `rank` tells rank 0 that it read rank 0's failure in `path`."""
    return path.with_name(f"{path.name}.read-{rank}")


def await_readers(path: Path, size: int) -> None:
    """Wait until every other rank has read rank 0's failure in `path` (READERS_WAIT_S at
    most): srun --kill-on-bad-exit ends every task once rank 0 exits, and a rank still starting
    up would then end without its own error line."""
    marks = [read_mark(path, rank) for rank in range(1, size)]
    deadline = time.monotonic() + READERS_WAIT_S
    while not all(m.exists() for m in marks) and time.monotonic() < deadline:
        time.sleep(POLL_S)
    time.sleep(READERS_GRACE_S)
    for mark in marks:
        mark.unlink(missing_ok=True)


def shared_store(directory: str | os.PathLike, meeting: Meeting) -> dist.Store:
    """The c10d store of a Slurm step, on a port rank 0 gets from the kernel (port 0: free, so
    no other job on the node can hold it) unless HPC_RNN_MASTER_PORT names one, published to
    the others through `directory`, which every node sees (the run directory). When rank 0
    cannot listen, it publishes why instead, and every rank ends with its own error line."""
    path = rendezvous_file(directory)
    if meeting.rank == 0:
        try:
            store = dist.TCPStore(
                meeting.addr,
                meeting.port,
                meeting.size,
                is_master=True,
                timeout=meeting.timeout,
                wait_for_workers=False,
            )
        except dist.DistError as exc:
            publish(path, f"failed {first_line(exc)}")
            await_readers(path, meeting.size)
            raise
        publish(path, f"{meeting.addr}:{store.port}")
        return store
    deadline = time.monotonic() + meeting.timeout_s
    while not path.exists():
        if time.monotonic() > deadline:
            raise UserError(
                f"rank {meeting.rank}: rank 0 did not publish its rendezvous address in {path} "
                f"within {meeting.timeout_s:.0f} s (--dist-timeout-s): did it start, and do all "
                f"nodes see {directory}?"
            )
        time.sleep(POLL_S)
    published = path.read_text().strip()
    if published.startswith("failed "):
        publish(read_mark(path, meeting.rank), "")
        raise meeting.master_failed(published.removeprefix("failed "))
    host, _, port = published.rpartition(":")
    return dist.TCPStore(host, int(port), meeting.size, is_master=False, timeout=meeting.timeout)


def tcp_store(meeting: Meeting, directory: str | os.PathLike | None) -> dist.Store:
    """The c10d store at MASTER_ADDR:MASTER_PORT, as init_process_group's tcp:// makes it (rank
    0 listens, unless torchrun's agent already does). With a `directory` every rank sees, rank
    0 leaves a note there when it cannot listen, so that the others end with their own line."""
    url = f"tcp://{meeting.addr}:{meeting.port}"

    def connect() -> dist.Store:
        store = next(dist.rendezvous(url, meeting.rank, meeting.size, timeout=meeting.timeout))[0]
        # The prefix tcp:// adds: torchrun's agent keeps keys of its own in the same store.
        return dist.PrefixStore("default_pg", store)

    note = failure_note(directory, meeting.port) if directory is not None else None
    if meeting.rank != 0:
        started = process_started()
        return watched(connect, meeting, lambda: read_failure(note, started) if note else None)
    try:
        store = connect()
    except dist.DistError as exc:
        if note:
            publish(note, f"{time.time():.3f} {first_line(exc)}")
        raise
    if note:
        note.unlink(missing_ok=True)  # a past launch's, which would only mislead
    return store


def watched(
    connect: Callable[[], dist.Store], meeting: Meeting, failure: Callable[[], str | None]
) -> dist.Store:
    """`connect()`, run aside while this rank watches for rank 0's `failure`. A client that
    reached another program's listener waits for an answer for ever (torch's timeout does not
    cover it): rank 0's failure, or the timeout, ends the wait with an error line instead."""
    outcome: list[dist.Store | BaseException] = []

    def attempt() -> None:
        try:
            outcome.append(connect())
        except BaseException as exc:  # raised again in this rank's own thread
            outcome.append(exc)

    # A daemon: one stuck for ever does not keep the process from exiting with the error.
    thread = threading.Thread(target=attempt, name="rendezvous", daemon=True)
    thread.start()
    deadline = time.monotonic() + meeting.timeout_s
    while thread.is_alive():
        reason = failure()
        if reason is not None:
            raise meeting.master_failed(reason)
        if time.monotonic() > deadline:
            raise meeting.no_answer()
        thread.join(POLL_S)
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def init_world(
    device: str = "auto",
    timeout_s: float = 600.0,
    rendezvous_dir: str | os.PathLike | None = None,
) -> World:
    """Join the process group (NCCL on GPUs, gloo on CPU) and pick this rank's device.

    The timeout bounds how long ranks wait for a peer that died, so a crash ends the job with
    an error instead of holding the allocation until its time limit. In a Slurm step, given a
    `rendezvous_dir` that every node sees, rank 0 listens on a free port (or
    HPC_RNN_MASTER_PORT) and publishes it there (shared_store); without one the port is derived
    from the job (process_layout). A rank 0 that cannot listen says so in `rendezvous_dir`, so
    that every rank ends within seconds with its own error line (exit 2).
    Every rank of a distributed run prints one line: its node, rank, local rank, device, the
    CPU cores it may use and its threads.
    """
    rank, size, local_rank, addr, port = process_layout()
    dev = pick_device(device, local_rank)
    use_cuda = dev.type == "cuda"
    if use_cuda:
        check_tasks_fit_gpus()
        torch.cuda.set_device(dev)
    if size > 1 and not dist.is_initialized():
        join_group(
            "nccl" if use_cuda else "gloo", rank, size, addr, port, timeout_s, rendezvous_dir
        )
        print(rank_line(rank, size, local_rank, dev), flush=True)
    return World(rank, size, local_rank, dev)


def join_group(
    backend: str,
    rank: int,
    size: int,
    addr: str,
    port: int,
    timeout_s: float,
    rendezvous_dir: str | os.PathLike | None,
) -> None:
    """init_process_group on the store of shared_store (a Slurm step with a shared directory)
    or tcp_store; any failure to meet is one UserError on every rank."""
    in_step = "RANK" not in os.environ and "SLURM_PROCID" in os.environ
    shared = in_step and rendezvous_dir is not None
    meeting = Meeting(
        rank,
        size,
        master_address(addr),
        (_env_int("HPC_RNN_MASTER_PORT") or 0) if shared else port,
        timeout_s,
        "HPC_RNN_MASTER_PORT" if in_step else "MASTER_PORT",
    )
    try:
        if shared:
            store = shared_store(rendezvous_dir, meeting)
        else:
            store = tcp_store(meeting, rendezvous_dir)
        dist.init_process_group(
            backend, store=store, rank=rank, world_size=size, timeout=meeting.timeout
        )
        if shared:
            dist.barrier()  # every rank has read the file
            if rank == 0:
                rendezvous_file(rendezvous_dir).unlink(missing_ok=True)
    except dist.DistError as exc:  # a busy port, a wrong address, a rank that never came
        raise meeting.failed(exc) from None


def rank_line(rank: int, size: int, local_rank: int, dev: torch.device) -> str:
    """'rank 5/8 local 1 on n2: cpu, 2 cores, 1 threads': where each rank runs, and on what."""
    node = os.environ.get("SLURMD_NODENAME") or socket.gethostname()
    cores = len(os.sched_getaffinity(0))
    return (
        f"rank {rank}/{size} local {local_rank} on {node}: {dev}, {cores} cores, "
        f"{torch.get_num_threads()} threads"
    )


def slurm_gpus_on_node() -> int:
    """GPUs the Slurm allocation gives this node (0 outside Slurm, or without GPUs)."""
    if "SLURM_JOB_ID" not in os.environ:
        return 0
    count = _env_int("SLURM_GPUS_ON_NODE")
    if count is not None:
        return count
    listed = os.environ.get("SLURM_STEP_GPUS") or os.environ.get("SLURM_JOB_GPUS") or ""
    return len([g for g in listed.split(",") if g])


def tasks_fit_gpus(spec: str, node: int, gpus: int) -> str | None:
    """Why the tasks that SLURM_STEP_TASKS_PER_NODE `spec` puts on node `node` of the step
    cannot have a GPU each of the `gpus` visible there, or None when they can: more tasks than
    GPUs would share GPUs silently."""
    counts = tasks_per_node(spec)
    here = counts[node] if node < len(counts) else 0
    if here <= gpus:
        return None
    return (
        f"{here} tasks on this node but {gpus} GPU(s) visible: run one task per GPU "
        "(--ntasks-per-node equal to --gpus-per-node)"
    )


def check_tasks_fit_gpus() -> None:
    """tasks_fit_gpus for this process's node of the Slurm step and the GPUs torch sees."""
    problem = tasks_fit_gpus(
        os.environ.get("SLURM_STEP_TASKS_PER_NODE", ""),
        _env_int("SLURM_NODEID") or 0,
        torch.cuda.device_count(),
    )
    if problem:
        raise UserError(problem)


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """ "auto": this rank's GPU if there is one, else the CPU; "cpu"; "cuda".

    In a Slurm allocation with GPUs, "auto" refuses to fall back to the CPU: torch without
    CUDA there is a broken driver or a CPU-only build, and training on the CPU would only
    look like it works.
    """
    if name == "auto":
        allocated = slurm_gpus_on_node()
        if allocated and not torch.cuda.is_available():
            raise UserError(
                f"the Slurm allocation gives this node {allocated} GPU(s), but torch "
                f"{torch.__version__} sees no CUDA device (built for CUDA "
                f"{torch.version.cuda or 'none: a CPU-only build'}): check the NVIDIA driver "
                "with nvidia-smi and install a CUDA build of torch, or pass --device cpu"
            )
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

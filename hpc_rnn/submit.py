"""Command: submit training (or the whole pipeline) to Slurm through submitit.

    python -m hpc_rnn.submit --nodes 2 --gpus 4 --data DATA --run RUN [train flags]
    DATA=... RUN=... python -m hpc_rnn.submit --nodes 2 --gpus 4   # as the sbatch templates
    python -m hpc_rnn.submit --sweep lr=0.001,0.003 hidden=256,512 --data DATA --run RUN --wait
    python -m hpc_rnn.submit --pipeline --corpus recipes.txt --data DATA --run RUN ...
    python -m hpc_rnn.submit --dry-run ...      # print the sbatch script(s), submit nothing
    python -m hpc_rnn.submit --local ...        # the same job on this machine, without Slurm

One task per GPU (tasks per node = --gpus). Slurm sends USR2 before the time limit: the ranks
checkpoint, requeue the job and it resumes from that checkpoint (submitit still counts it as
running). scancel (TERM) makes them checkpoint and stop: the job ends CANCELLED, and the same
command continues it. A --sweep is one job array, one run directory RUN/KEY=V_... per point;
with --wait a table of the points' results follows. Before submitting, Slurm itself is asked
whether each job can ever start (sbatch --test-only and the partition's MaxTime); --no-check
skips that.
Flags this command does not know go to hpc_rnn.train (python -m hpc_rnn.train --help).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import submitit

from hpc_rnn import config, metrics
from hpc_rnn.cli import Parser, UserError, command_parser, run_main, say
from hpc_rnn.config import opt
from hpc_rnn.heap import keep_freed_memory

SIGNAL_DELAY_S = 300  # USR2 this long before the time limit: time for a step and a checkpoint
REPORT_EVERY_S = 180.0  # --wait prints a queued job's state and pending reason this often
SLURM_TIMEOUT_S = 60  # for sbatch --test-only, squeue, sinfo, scontrol: slower is a cluster down


@dataclass
class SlurmConfig:
    nodes: int = opt(1, "nodes of the training job (--local: 1 only)")
    gpus: int = opt(0, "GPUs per node, one training task per GPU; 0: one CPU task per node")
    cpus_per_task: int = opt(8, "CPUs per task (sbatch --cpus-per-task)")
    time: str = opt("12:00:00", "time limit, in Slurm's forms M, M:S, H:M:S, D-H, D-H:M or D-H:M:S")
    partition: str = opt("", "Slurm partition (default: the cluster's default)")
    account: str = opt("", "Slurm account to charge (default: your default)")
    qos: str = opt("", "Slurm quality of service (default: the default)")
    mem: str = opt("", "memory per node, as sbatch --mem takes it, e.g. 64G (default: Slurm's)")
    constraint: str = opt("", "node features the job needs (sbatch --constraint)")
    job_name: str = opt(
        "",
        "the training job's name in squeue and sacct (default: train-NAME, NAME being the run "
        "directory's; a sweep: sweep-NAME)",
    )
    preprocess_ranks: int = opt(1, "MPI ranks of --pipeline's preprocess job (srun --mpi=pmi2)")


class TrainJob(submitit.helpers.Checkpointable):
    """The training as submitit runs it: one call per task, same arguments on every rank."""

    def __init__(self, cfg: config.TrainConfig) -> None:
        self.cfg = cfg

    def __call__(self) -> dict[str, Any]:
        from hpc_rnn.train import EXIT_STOPPED, train

        keep_freed_memory()  # submitit calls this object directly, not through a command
        if os.environ.get("SUBMITIT_EXECUTOR") == "local":
            # No srun here: submitit's variables say who is who. (Under Slurm the srun step's own
            # do, see distributed.process_layout.) Not a MASTER_PORT the shell exported: every
            # run from that shell would meet on it.
            os.environ.pop("MASTER_PORT", None)
            submitit.helpers.TorchDistributedEnvironment().export(
                set_cuda_visible_devices=False, overwrite=True
            )
        cpus = os.environ.get("SLURM_CPUS_PER_TASK", "")
        if cpus.isdigit():  # the job script of the templates sets OMP_NUM_THREADS; submitit's not
            import torch

            torch.set_num_threads(int(cpus))
        rc = train(self.cfg)
        if rc == EXIT_STOPPED:
            # Checkpointed on a signal (and, before a time limit, requeued). End this attempt
            # without a result file, as submitit's own requeue does (sys.exit is no Exception to
            # its runner): any result, even an error, makes job.done() true while the requeued
            # job has yet to run.
            sys.exit(rc)
        if rc != 0:
            raise RuntimeError(f"training exited with {rc}")
        return run_summary(self.cfg.run, rc)

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        # Reached only if submitit's own handler gets the signal first; training resumes from
        # its newest checkpoint either way.
        return submitit.helpers.DelayedSubmission(
            TrainJob(dataclasses.replace(self.cfg, resume="auto"))
        )


def run_summary(run: str, rc: int) -> dict[str, Any]:
    """A finished run's result: its directory, exit code, steps and last validation loss."""
    path = Path(run) / metrics.METRICS_FILE
    records = metrics.read(path) if path.exists() else []
    steps = [r["step"] for r in records if "step" in r]  # validations too: the last step
    losses = [r["val_loss"] for r in records if "val_loss" in r]
    return {
        "run": run,
        "exit": rc,
        "step": steps[-1] if steps else 0,
        "val_loss": losses[-1] if losses else None,
    }


def run_command(main_fn: Any, argv: list[str]) -> int:
    """Run a command's main() as a job step; a non-zero exit fails the job (and its dependents)."""
    rc = main_fn(argv)
    if rc != 0:
        raise RuntimeError(f"{main_fn.__module__} {' '.join(argv)} exited with {rc}")
    return rc


_TIME = re.compile(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", re.ASCII)


def minutes(spec: str) -> int:
    """A Slurm time limit as whole minutes (seconds round up), by sbatch's rules: M, M:S, H:M:S,
    D-H, D-H:M, D-H:M:S."""
    match = _TIME.fullmatch(spec)
    if not match:
        raise UserError(
            f"--time {spec!r} is not a Slurm time: use M, M:S, H:M:S, D-H, D-H:M or D-H:M:S"
        )
    days, *clock = match.groups()
    parts = [int(p) for p in clock if p is not None]
    if days is not None:  # after "D-" the fields are H, H:M or H:M:S
        h, m, s = [*parts, 0, 0][:3]
        total_s = ((int(days) * 24 + h) * 60 + m) * 60 + s
    elif len(parts) == 3:
        h, m, s = parts
        total_s = (h * 60 + m) * 60 + s
    else:  # M or M:S
        m, s = [*parts, 0][:2]
        total_s = m * 60 + s
    if total_s == 0:
        raise UserError(f"--time {spec!r} is zero: give the job a time limit")
    return -(-total_s // 60)


# ---------------------------------------------------------------------------------------------
# The jobs: what runs, and the sbatch options of each


@dataclass
class Job:
    """One job of a submission: its step name, what submitit calls, and the keyword parameters
    of submitit.SlurmExecutor.update_parameters (sbatch's options, in submitit's names)."""

    step: str
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    params: dict[str, Any]
    equivalent: list[str]  # the command line the job's work amounts to, for --local --dry-run
    tasks_option: str  # the flag that sets the tasks per node, named when they do not fit
    after: str = ""  # the step that must succeed first (sbatch --dependency=afterok)
    point: str = ""  # a sweep's point ("lr=0.001 hidden=256"): its jobs form one job array
    local_tasks: int = field(init=False)

    def __post_init__(self) -> None:
        self.local_tasks = self.params["ntasks_per_node"]


def run_name(run: str) -> str:
    """The run directory's own name, for job names: squeue and sacct show which run a job is."""
    return Path(run).expanduser().absolute().name or "run"


def srun_cpus(cpus: int) -> list[str]:
    """srun's share of the CPUs: since Slurm 22.05 srun no longer takes --cpus-per-task from
    the allocation, and each task would get one CPU."""
    return [f"--cpus-per-task={cpus}"]


Point = tuple[str, config.TrainConfig, list[str]]  # a sweep's label, config and train argv


def plan(
    slurm: SlurmConfig,
    cfg: config.TrainConfig,
    train_argv: list[str],
    pipeline: bool,
    corpus: str | None,
    points: list[Point] | None = None,
    generate_args: tuple[str, ...] = (),
) -> list[Job]:
    """The jobs to submit, in order: training alone, a sweep's points (one job array), or
    preprocess -> train -> generate."""
    where = {k: getattr(slurm, k) for k in ("partition", "account", "qos") if getattr(slurm, k)}
    name = run_name(cfg.run)
    train_params: dict[str, Any] = {
        "job_name": slurm.job_name or f"{'sweep' if points else 'train'}-{name}",
        "nodes": slurm.nodes,
        "ntasks_per_node": max(slurm.gpus, 1),
        "cpus_per_task": slurm.cpus_per_task,
        "time": minutes(slurm.time),
        "signal_delay_s": SIGNAL_DELAY_S,
        # A rank that dies (killed, out of memory) ends the others at once instead of leaving
        # them to wait for it until --dist-timeout-s.
        "srun_args": ["--kill-on-bad-exit=1", *srun_cpus(slurm.cpus_per_task)],
        **where,
        **({"gpus_per_node": slurm.gpus} if slurm.gpus else {}),
        **{k: getattr(slurm, k) for k in ("mem", "constraint") if getattr(slurm, k)},
    }
    if points:
        if pipeline:
            raise UserError("--sweep and --pipeline do not go together: preprocess, then sweep")
        return [
            Job(
                "train",
                TrainJob(point_cfg),
                (),
                train_params,
                ["python", "-m", "hpc_rnn.train", *point_argv],
                "--gpus",
                point=label,
            )
            for label, point_cfg, point_argv in points
        ]
    train = Job(
        "train",
        TrainJob(cfg),
        (),
        train_params,
        ["python", "-m", "hpc_rnn.train", *train_argv],
        "--gpus",
    )
    if not pipeline:
        return [train]
    if not corpus:
        raise UserError("--pipeline needs --corpus, the recipe text to preprocess")
    from hpc_rnn import generate, preprocess

    prep_argv = [corpus, "--out", cfg.data, "--overwrite"]
    prep = Job(
        "preprocess",
        run_command,
        (preprocess.main, prep_argv),
        {
            "job_name": f"preprocess-{name}",
            "nodes": 1,
            "ntasks_per_node": slurm.preprocess_ranks,
            "cpus_per_task": 1,
            "time": 60,
            "srun_args": ["--mpi=pmi2"],
            **where,
        },
        ["python", "-m", "hpc_rnn.preprocess", *prep_argv],
        "--preprocess-ranks",
    )
    # Locally there is no srun to make the ranks one MPI world: one process does it all.
    prep.local_tasks = 1
    gen_argv = ["--checkpoint", cfg.run, "--n", "20", "--out", str(Path(cfg.run) / "recipes")]
    gen_argv += ["--overwrite", *generate_args]
    gen = Job(
        "generate",
        run_command,
        (generate.main, gen_argv),
        {
            "job_name": f"generate-{name}",
            "nodes": 1,
            "ntasks_per_node": 1,
            "cpus_per_task": slurm.cpus_per_task,
            "time": 30,
            "srun_args": srun_cpus(slurm.cpus_per_task),
            **where,
            **({"gpus_per_node": 1} if slurm.gpus else {}),
        },
        ["python", "-m", "hpc_rnn.generate", *gen_argv],
        "--gpus",
    )
    train.after, gen.after = "preprocess", "train"
    return [prep, train, gen]


def dependency_placeholder(step: str) -> str:
    """What --dry-run shows where the job id of an earlier step will be."""
    return f"{step.upper()}_JOB_ID"


# ---------------------------------------------------------------------------------------------
# The sbatch text. submitit (1.5) renders it only inside SlurmExecutor's private methods, and
# SlurmExecutor refuses to exist where `srun` is not on PATH, so a dry run on a laptop cannot ask
# it. This renders the same text from the same parameters, once, for --dry-run and for the
# sbatch --test-only check; tests/test_slurm_jobs.py compares it with the file submitit itself
# wrote for a real job (RUN/submitit/<id>_submission.sh), and the golden tests pin it.


ARRAY_PARALLELISM = 256  # submitit's default: array tasks that may run at once


def sbatch_text(params: dict[str, Any], folder: Path, array: int = 0) -> str:
    """The script submitit.SlurmExecutor(folder) with `params` hands to sbatch; for a job
    array of `array` tasks (executor.batch()) if that is not 0."""
    p = dict(params)
    srun_args = p.pop("srun_args", [])
    signal_delay_s = p.pop("signal_delay_s", 90)  # submitit's default
    job = "%A_%a" if array else "%j"
    stdout, stderr = folder / f"{job}_%t_log.out", folder / f"{job}_%t_log.err"
    if array:
        p["array"] = f"0-{array - 1}%{min(array, ARRAY_PARALLELISM)}"
    options = {
        "wckey": "submitit",  # submitit's default
        **p,
        "signal": f"USR2@{signal_delay_s}",
        "output": str(stdout).replace("%t", "0"),
        "error": str(stderr).replace("%t", "0"),
        "open-mode": "append",
    }
    srun = ["srun", "--unbuffered", "--output", str(stdout), "--error", str(stderr), *srun_args]
    python = shlex.quote(sys.executable)
    command = f"{python} -u -m submitit.core._submit {shlex.quote(str(folder))}"
    lines = ["#!/bin/bash", "", "# Parameters"]
    for key in sorted(options):
        lines.append(f"#SBATCH --{key.replace('_', '-')}={shlex.quote(str(options[key]))}")
    lines += ["", "# command", "export SUBMITIT_EXECUTOR=slurm"]
    lines += [f"{shlex.join(srun)} {command}", ""]
    return "\n".join(lines)


def dry_run_text(jobs: list[Job], folder: Path, local: bool) -> str:
    """What --dry-run prints: one job's script as it is, or each job under a header line."""
    if local:
        return "\n".join(local_commands(job, folder) for job in jobs)
    if jobs[0].point:
        tasks = [
            f"# task {i}: {job.point}: {shlex.join(job.equivalent)}" for i, job in enumerate(jobs)
        ]
        head = f"# ===== a job array of {len(jobs)} sweep points =====\n"
        return "\n".join([head, *tasks, ""]) + "\n" + sbatch_text(jobs[0].params, folder, len(jobs))
    if len(jobs) == 1:
        return sbatch_text(jobs[0].params, folder)
    out = []
    for i, job in enumerate(jobs, 1):
        params = dict(job.params)
        after = ""
        if job.after:
            params["dependency"] = f"afterok:{dependency_placeholder(job.after)}"
            after = f", starts after {job.after} succeeded"
        out.append(f"# ===== job {i} of {len(jobs)}: {job.step}{after} =====\n")
        out.append(sbatch_text(params, folder))
    return "\n".join(out)


def local_commands(job: Job, folder: Path) -> str:
    """The processes submitit's LocalExecutor would start for `job`, one line per task."""
    gpus = ",".join(str(g) for g in range(job.params.get("gpus_per_node", 0)))
    head = [
        f"# {job.step}: {job.local_tasks} task(s) on this machine (submitit LocalExecutor),"
        f" logs in {folder}",
        f"# each task does the work of: {shlex.join(job.equivalent)}",
    ]
    tasks = [
        f"SUBMITIT_EXECUTOR=local SUBMITIT_LOCAL_NTASKS={job.local_tasks}"
        f" SUBMITIT_LOCAL_LOCALID={k} SUBMITIT_LOCAL_GLOBALID={k} CUDA_VISIBLE_DEVICES={gpus}"
        f" {shlex.quote(sys.executable)} -u -m submitit.core._submit {shlex.quote(str(folder))}"
        for k in range(job.local_tasks)
    ]
    return "\n".join(head + tasks) + "\n"


# ---------------------------------------------------------------------------------------------
# Where the jobs can run


def require_slurm() -> None:
    missing = [tool for tool in ("sbatch", "srun") if shutil.which(tool) is None]
    if missing:
        raise UserError(
            f"{' and '.join(missing)} not found on PATH, so this machine cannot submit Slurm jobs:"
            " run this on the cluster's login node, add --local to run it here on one node,"
            " or --dry-run to print the job script"
        )


def check_local(slurm: SlurmConfig) -> None:
    if slurm.nodes != 1:
        raise UserError(f"--local runs on this machine only: --nodes {slurm.nodes} needs Slurm")
    if slurm.gpus:
        import torch

        have = torch.cuda.device_count()
        if slurm.gpus > have:
            raise UserError(
                f"--local --gpus {slurm.gpus}: this machine has {have} GPU(s) that torch can use;"
                + (f" use --gpus {have} or fewer" if have else " use --gpus 0 (one CPU task)")
            )


def slurm_cmd(*cmd: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            cmd, input=stdin, capture_output=True, text=True, timeout=SLURM_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise UserError(
            f"{cmd[0]} did not answer within {SLURM_TIMEOUT_S} s: is the cluster up?"
        ) from None


# ---------------------------------------------------------------------------------------------
# Asking Slurm whether a job can ever start

# Slurm's refusals (slurm_strerror) and the flag of this command that changes what they are about.
_REASON_OPTION = {
    "invalid partition": "--partition",
    "invalid account": "--account",
    "invalid qos": "--qos",
    "invalid feature": "--constraint",
    "time limit": "--time",
    "generic resource": "--gpus",
    "memory": "--mem",
    "node count": "--nodes",
    "qos policy": "--time, --nodes, --gpus or --qos",  # "Job violates accounting/QOS policy"
}


def check_job(job: Job, folder: Path, array: int = 0) -> None:
    """Refuse `job` (UserError) if Slurm says it can never start, before anything is queued.

    `sbatch --test-only` runs Slurm's own admission and scheduling test on the exact script. It
    passes a time over the partition's MaxTime (unless EnforcePartLimits is set, such a job is
    queued and pends forever with reason PartitionTimeLimit), so that limit is compared here.
    """
    script = sbatch_text(job.params, folder, array)  # no --dependency: earlier jobs do not exist
    proc = slurm_cmd("sbatch", "--test-only", stdin=script)
    said = [
        re.sub(r"^(sbatch: error: |sbatch: |allocation failure: )", "", line).strip()
        for line in proc.stderr.splitlines()
        if line.strip()
    ]
    if proc.returncode != 0:
        reason = "; ".join(dict.fromkeys(said)) or f"sbatch --test-only exited {proc.returncode}"
        option = next((o for k, o in _REASON_OPTION.items() if k in reason.lower()), "")
        hint = f"change {option}" if option else node_fit_hint(job)
        raise UserError(
            f"Slurm would never start the {job.step} job: {reason}; {hint}"
            " (--no-check submits it anyway)"
        )
    found = re.search(r" in partition (\S+)", " ".join(said))
    if not found:
        return  # a Slurm that words its answer otherwise: its own test passed
    partition = found.group(1)
    shown = slurm_cmd("scontrol", "show", "partition", "-o", partition).stdout
    limit = re.search(r"\bMaxTime=(\S+)", shown)
    if not limit or limit.group(1).upper() in {"UNLIMITED", "INFINITE"}:
        return
    if job.params["time"] > minutes(limit.group(1)):
        raise UserError(
            f"Slurm would never start the {job.step} job: its time limit of"
            f" {job.params['time']} min is over partition {partition}'s MaxTime {limit.group(1)}"
            " (it would pend with reason PartitionTimeLimit); lower --time"
            " (--no-check submits it anyway)"
        )


def node_fit_hint(job: Job) -> str:
    """Which of the job's asks no node of its partition meets, and the flag that sets it."""
    part = job.params.get("partition", "")
    rows = slurm_cmd("sinfo", "-h", "-N", "-o", "%P|%n|%c|%m|%G").stdout.split()
    nodes = []
    for row in rows:
        name, host, cpus, mem, gres = (row.split("|") + [""] * 5)[:5]
        if (part and name.rstrip("*") == part) or (not part and name.endswith("*")):
            gpus = sum(int(n) for n in re.findall(r"gpu(?::[^:,(]+)?:(\d+)", gres))
            nodes.append((host, int(cpus or 0), int(mem.rstrip("+") or 0), gpus))
    where = f"partition {part}" if part else "the default partition"
    if not nodes:
        return f"{where} has no nodes that sinfo lists; change --partition"
    p = job.params
    tasks = p["ntasks_per_node"]
    asks = []
    if p["nodes"] > len({n[0] for n in nodes}):
        asks.append(f"{p['nodes']} nodes, {where} has {len({n[0] for n in nodes})}: lower --nodes")
    per_task = p.get("cpus_per_task", 1)
    if tasks * per_task > max(n[1] for n in nodes):
        lower = [o for o, n in (("--cpus-per-task", per_task), (job.tasks_option, tasks)) if n > 1]
        asks.append(
            f"{tasks * per_task} CPUs per node ({tasks} task(s) x {per_task}), the largest"
            f" node of {where} has {max(n[1] for n in nodes)}: lower {' or '.join(lower)}"
        )
    if p.get("gpus_per_node", 0) > max(n[3] for n in nodes):
        asks.append(
            f"{p['gpus_per_node']} GPUs per node, the most of {where} is"
            f" {max(n[3] for n in nodes)}: lower --gpus"
        )
    mem = re.fullmatch(r"(\d+)([KMGT]?)B?", str(p.get("mem", "")).upper())
    if mem:
        mb = int(mem.group(1)) * {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1 << 20}[mem[2]]
        if mb > max(n[2] for n in nodes):
            asks.append(
                f"--mem {p['mem']}, the largest node of {where} has"
                f" {max(n[2] for n in nodes)} MB: lower --mem"
            )
    if asks:
        return "the job asks " + "; ".join(asks)
    return "change --nodes, --gpus, --cpus-per-task, --mem or --constraint"


# ---------------------------------------------------------------------------------------------
# Submitting, running locally, waiting

# What submitit raises when sbatch, a job or its result fails: turned into one line for the user.
SUBMITIT_ERRORS = (
    submitit.core.utils.FailedSubmissionError,
    submitit.core.utils.FailedJobError,
    submitit.core.utils.UncompletedJobError,
    subprocess.CalledProcessError,
    OSError,
    RuntimeError,
    ValueError,
)


def last_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def executor_for(job: Job, folder: Path, local: bool, dependency: str) -> submitit.Executor:
    """The submitit executor that runs `job`, after job id `dependency` succeeded if given."""
    executor: submitit.Executor
    if local:
        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(
            timeout_min=job.params["time"],
            tasks_per_node=job.local_tasks,
            gpus_per_node=job.params.get("gpus_per_node", 0),
            signal_delay_s=job.params.get("signal_delay_s", 90),
        )
        return executor
    executor = submitit.SlurmExecutor(folder=folder)
    params = dict(job.params)
    if dependency:
        params["dependency"] = f"afterok:{dependency}"
    executor.update_parameters(**params)
    return executor


def submit_jobs(jobs: list[Job], folder: Path, local: bool) -> list[tuple[str, submitit.Job]]:
    """Submit every job (locally: run each after the one before has ended); a sweep's points
    as one job array. Returns (step or point, handle) pairs."""
    if jobs and jobs[0].point:
        try:
            executor = executor_for(jobs[0], folder, local, "")
            with executor.batch():
                handles = [executor.submit(job.fn, *job.args) for job in jobs]
        except SUBMITIT_ERRORS as exc:
            raise UserError(f"could not submit the sweep: {last_line(exc)}") from None
        return [(job.point, handle) for job, handle in zip(jobs, handles, strict=True)]
    done: dict[str, submitit.Job] = {}
    out: list[tuple[str, submitit.Job]] = []
    for job in jobs:
        try:
            if local and job.after:
                result_of(job.after, done[job.after])
            dependency = done[job.after].job_id if job.after and not local else ""
            handle = executor_for(job, folder, local, dependency).submit(job.fn, *job.args)
        except SUBMITIT_ERRORS as exc:
            queued = " ".join(j.job_id for _, j in out) if not local else ""
            also = f" (already queued: {queued}; scancel them if they should not run)"
            raise UserError(
                f"could not submit the {job.step} job: {last_line(exc)}{also if queued else ''}"
            ) from None
        done[job.step] = handle
        out.append((job.step, handle))
    return out


def result_of(step: str, job: submitit.Job) -> Any:
    """The job's result once it has ended; a failed job becomes one line naming its log."""
    try:
        return job.results()[0]
    except SUBMITIT_ERRORS as exc:
        raise UserError(
            f"{step}: job {job.job_id} failed: {last_line(exc)} (log: {job.paths.stderr})"
        ) from None


def queue_state(job_id: str) -> str:
    """The job's state in squeue, with Slurm's reason while it pends: "PENDING (Resources)"."""
    proc = slurm_cmd("squeue", "-h", "-j", job_id, "-o", "%T|%r")
    state, _, reason = proc.stdout.strip().partition("|")
    if not state:
        return "not in squeue any more (finishing)"
    return f"{state} ({reason})" if state == "PENDING" else state


def wait_for(
    jobs: list[tuple[str, submitit.Job]], report_every_s: float, local: bool, sweep: bool
) -> None:
    """Print each job's result in order (a sweep: one table of all points at the end); while a
    Slurm job has not ended, print its queue state every `report_every_s`, so that a long wait
    is never silent."""
    rows = []
    for step, job in jobs:
        next_report = time.monotonic() + report_every_s
        while not local and not job.done():
            if time.monotonic() >= next_report:
                say(f"{step}: job {job.job_id} {queue_state(job.job_id)}")
                next_report += report_every_s
            time.sleep(min(1.0, report_every_s))
        if not sweep:
            print(f"{step}: {result_of(step, job)}", flush=True)
            continue
        try:
            rows.append((step, job, result_of(step, job)))
        except UserError as exc:  # one failed point must not hide the others' results
            rows.append((step, job, str(exc)))
    if sweep:
        print(sweep_table(rows), flush=True)
        failed = [step for step, _, result in rows if isinstance(result, str)]
        if failed:
            raise UserError(
                f"{len(failed)} of {len(rows)} sweep points failed: {', '.join(failed)}"
            )


def sweep_table(rows: list[tuple[str, submitit.Job, dict[str, Any] | str]]) -> str:
    """The sweep's results, one line per point: its job, steps, last validation loss, run."""
    lines = [("point", "job", "steps", "val_loss", "run")]
    for point, job, result in rows:
        if isinstance(result, str):
            lines.append((point, job.job_id, "-", "failed", result.split(": ", 1)[-1]))
            continue
        loss = result["val_loss"]
        val = f"{loss:.4f}" if loss is not None else "-"
        lines.append((point, job.job_id, str(result["step"]), val, result["run"]))
    widths = [max(len(line[i]) for line in lines) for i in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line[:4], widths, strict=True)) + "  " + line[4]
        for line in lines
    )


def sweep_points(specs: list[str]) -> list[tuple[str, str, list[str]]]:
    """--sweep KEY=V1,V2 ... as (label, directory name, training flags) per point of the grid."""
    if not specs:
        return []  # (the product of no axes would be one empty point)
    axes = []
    for spec in specs:
        key, _, values = spec.partition("=")
        vals = values.split(",")
        if not re.fullmatch(r"[a-z][a-z0-9_-]*", key) or not all(
            re.fullmatch(r"[^/\s,=]+", v) for v in vals
        ):
            raise UserError(
                f"--sweep {spec!r}: write KEY=V1,V2,... (e.g. lr=0.001,0.003), KEY a training"
                " flag without its dashes, values without / or spaces"
            )
        if key in (k for k, _ in axes):
            raise UserError(f"--sweep: {key} is given twice")
        axes.append((key, vals))
    points = []
    for combo in itertools.product(*[[(k, v) for v in vals] for k, vals in axes]):
        flags = [x for k, v in combo for x in ("--" + k.replace("_", "-"), v)]
        points.append(
            (" ".join(f"{k}={v}" for k, v in combo), "_".join(f"{k}={v}" for k, v in combo), flags)
        )
    return points


def with_env_paths(train_argv: list[str]) -> list[str]:
    """`train_argv`, with --data and --run from DATA and RUN in the environment where they are
    not given (as the sbatch templates take them)."""
    paths = Parser(prog="python -m hpc_rnn.submit", add_help=False)
    paths.add_argument("--data")
    paths.add_argument("--run", "--run-dir", dest="run")
    given, _ = paths.parse_known_args(train_argv)
    extra, missing = [], []
    for flag, var in (("--data", "DATA"), ("--run", "RUN")):
        if getattr(given, flag[2:]) is None:
            if os.environ.get(var):
                extra += [flag, os.environ[var]]
            else:
                missing.append(f"{flag} {var}")
    if missing:
        raise UserError(
            f"python -m hpc_rnn.submit needs {' and '.join(missing)}, as flags or from the"
            " environment (as the sbatch templates take them)"
        )
    return [*train_argv, *extra]


# ---------------------------------------------------------------------------------------------


def build_parser() -> Parser:
    # No abbreviations: an abbreviated training flag must reach hpc_rnn.train, not match one of
    # these.
    parser = command_parser("hpc_rnn.submit", __doc__, allow_abbrev=False)
    config.add_arguments(parser, SlurmConfig)
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print what would be submitted and stop: the exact sbatch script (with --pipeline"
        " every job and its --dependency), or with --local the command line of every task;"
        " needs no Slurm, asks it nothing and writes nothing",
    )
    parser.add_argument(
        "--local",
        action="store_true",
        help="run the job(s) on this machine through submitit's local executor instead of"
        " Slurm: one node, one task per GPU (no more than this machine has), or one CPU task",
    )
    parser.add_argument(
        "--check",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="before submitting, ask Slurm whether each job can ever start (sbatch --test-only"
        " on the exact script, and the partition's MaxTime); one that cannot is refused with"
        " Slurm's reason and the flag to change. --no-check submits without asking",
    )
    parser.add_argument(
        "--wait",
        action="store_true",
        help="wait for the jobs to end and print their results; meanwhile print each queued"
        " job's state and Slurm's pending reason (squeue) every --report-every seconds",
    )
    parser.add_argument(
        "--report-every",
        type=float,
        default=REPORT_EVERY_S,
        metavar="SECONDS",
        help="with --wait: seconds between two state lines of a job that has not ended "
        f"(default: {REPORT_EVERY_S:g})",
    )
    parser.add_argument(
        "--pipeline",
        action="store_true",
        help="submit preprocess -> train -> generate, each starting when the one before"
        " succeeded (sbatch --dependency=afterok)",
    )
    parser.add_argument(
        "--corpus",
        default="",
        help="the recipe text for --pipeline's preprocess job (default: none)",
    )
    parser.add_argument(
        "--generate-args",
        default="",
        metavar="FLAGS",
        help="flags for --pipeline's generate job, split as a shell would, e.g. "
        '"--title \'Lemon Chicken\' --ingredients list.txt" or "--complete held.txt" '
        "(default: none)",
    )
    parser.add_argument(
        "--sweep",
        nargs="+",
        default=[],
        metavar="KEY=V1,V2",
        help="train every combination of these training-flag values (lr=0.001,0.003"
        " hidden=256,512: 4 points) as one job array, each point in RUN/KEY=V_KEY=V; with"
        " --wait a table of their results follows",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    def body() -> int:
        from hpc_rnn.train import parse_config

        args, train_argv = build_parser().parse_known_args(argv)

        if args.report_every <= 0:
            raise UserError(f"--report-every {args.report_every} must be more than 0 seconds")
        slurm = config.from_args(SlurmConfig, args)
        train_argv = with_env_paths(train_argv)
        cfg = parse_config(train_argv)
        points = []
        for label, directory, flags in sweep_points(args.sweep):
            point_argv = [*train_argv, *flags, "--run", str(Path(cfg.run) / directory)]
            try:
                points.append((label, parse_config(point_argv), point_argv))
            except UserError as exc:
                raise UserError(f"--sweep point {label}: {exc}") from None
        generate_args = tuple(shlex.split(args.generate_args))
        if generate_args and not args.pipeline:
            raise UserError("--generate-args is for --pipeline's generate job: add --pipeline")
        jobs = plan(slurm, cfg, train_argv, args.pipeline, args.corpus, points, generate_args)
        # submitit keeps absolute paths in the script; so does the dry run.
        folder = Path(cfg.run).expanduser().absolute() / "submitit"
        if args.local:
            check_local(slurm)
        if args.dry_run:
            print(dry_run_text(jobs, folder, args.local), end="")
            return 0
        if not args.local:
            require_slurm()
            if args.check and points:  # one job array, the same script for every point
                check_job(jobs[0], folder, len(jobs))
            elif args.check:
                for job in jobs:
                    check_job(job, folder)
        handles = submit_jobs(jobs, folder, args.local)
        for name, job in handles:
            print(
                f"{name}: job {job.job_id}, logs {job.paths.stdout} and {job.paths.stderr}",
                flush=True,
            )
        if args.wait:
            wait_for(handles, args.report_every, args.local, bool(points))
        return 0

    return run_main(body)


if __name__ == "__main__":
    raise SystemExit(main())

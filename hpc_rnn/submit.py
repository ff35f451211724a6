"""Command: submit training (or the whole pipeline) to Slurm through submitit.

    python -m hpc_rnn.submit --nodes 2 --gpus 4 --data DATA --run RUN [train flags]
    python -m hpc_rnn.submit --pipeline --corpus recipes.txt --data DATA --run RUN ...
    python -m hpc_rnn.submit --dry-run ...      # print the sbatch script, submit nothing
    python -m hpc_rnn.submit --local ...        # the same job without Slurm

One task per GPU (tasks per node = --gpus). The training is a submitit Checkpointable: a stop
signal (USR2 before the time limit, or pre-emption) makes the ranks checkpoint and requeue the
job, which resumes from that checkpoint. Flags this command does not know go to hpc_rnn.train.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import submitit

from hpc_rnn import config
from hpc_rnn.cli import UserError, run_main
from hpc_rnn.heap import keep_freed_memory

SIGNAL_DELAY_S = 300  # USR2 this long before the time limit: time for a step and a checkpoint


@dataclass
class SlurmConfig:
    nodes: int = 1
    gpus: int = 0  # GPUs per node = tasks per node (0: one CPU task per node)
    cpus_per_task: int = 8
    time: str = "12:00:00"
    partition: str = ""
    account: str = ""
    qos: str = ""
    mem: str = ""
    constraint: str = ""
    job_name: str = "hpc_rnn_train"
    preprocess_ranks: int = 1  # MPI ranks of --pipeline's preprocess step (srun --mpi=pmi2)


class TrainJob(submitit.helpers.Checkpointable):
    """The training as submitit runs it: one call per task, same arguments on every rank."""

    def __init__(self, cfg: config.TrainConfig) -> None:
        self.cfg = cfg

    def __call__(self) -> dict[str, Any]:
        from hpc_rnn.train import EXIT_STOPPED, train

        keep_freed_memory()  # submitit calls this object directly, not through a command
        # RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT for submitit's tasks, local or Slurm.
        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        rc = train(self.cfg)
        if rc == EXIT_STOPPED:
            # Requeued (or out of requeues): this attempt ends here without a result.
            raise submitit.core.utils.UncompletedJobError("stopped by a signal after a checkpoint")
        if rc != 0:
            raise RuntimeError(f"training exited with {rc}")
        return {"run": self.cfg.run, "exit": rc}

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        # Reached only if submitit's own handler gets the signal first; training resumes from
        # its newest checkpoint either way.
        return submitit.helpers.DelayedSubmission(
            TrainJob(dataclasses.replace(self.cfg, resume="auto"))
        )


def minutes(hhmmss: str) -> int:
    """Slurm's [D-]HH:MM:SS (or MM) as whole minutes."""
    try:
        days, _, rest = hhmmss.rpartition("-")
        parts = [int(p) for p in rest.split(":")]
    except ValueError:
        raise UserError(f"--time {hhmmss!r} is not [D-]HH:MM:SS") from None
    while len(parts) < 3:
        parts = [0, *parts] if len(parts) == 2 else [0, parts[0], 0]
    h, m, s = parts
    return (int(days or 0) * 24 + h) * 60 + m + (1 if s else 0)


def make_executor(slurm: SlurmConfig, folder: Path, cluster: str | None) -> submitit.AutoExecutor:
    executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
    tasks = max(slurm.gpus, 1)
    params: dict[str, Any] = {
        "name": slurm.job_name,
        "nodes": slurm.nodes,
        "tasks_per_node": tasks,
        "cpus_per_task": slurm.cpus_per_task,
        "timeout_min": minutes(slurm.time),
        "slurm_signal_delay_s": SIGNAL_DELAY_S,
    }
    if slurm.gpus:
        params["gpus_per_node"] = slurm.gpus
    for key in ("partition", "account", "qos", "mem", "constraint"):
        if getattr(slurm, key):
            params[f"slurm_{key}"] = getattr(slurm, key)
    executor.update_parameters(**params)
    return executor


def sbatch_script(executor: submitit.AutoExecutor) -> str:
    """The script submitit would hand to sbatch (for --dry-run)."""
    inner = executor._executor  # submitit keeps the Slurm executor behind AutoExecutor
    return inner._make_submission_file_text(inner._submitit_command_str, "DRY-RUN")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hpc_rnn.submit", description=__doc__.split("\n")[0]
    )
    config.add_arguments(parser, SlurmConfig)
    parser.add_argument("--dry-run", action="store_true", help="print the sbatch script only")
    parser.add_argument("--local", action="store_true", help="run the tasks here, without Slurm")
    parser.add_argument("--pipeline", action="store_true", help="preprocess -> train -> generate")
    parser.add_argument("--corpus", help="recipe text for --pipeline's preprocess step")
    parser.add_argument("--wait", action="store_true", help="wait for the job and print its result")
    args, train_args = parser.parse_known_args(argv)

    def body() -> int:
        from hpc_rnn.train import parse_config

        slurm = config.from_args(SlurmConfig, args)
        cfg = parse_config(train_args)
        run = Path(cfg.run)
        folder = run / "submitit"
        cluster = "local" if args.local else ("slurm" if args.dry_run else None)
        executor = make_executor(slurm, folder, cluster)
        if args.dry_run:
            print(sbatch_script(executor))
            return 0
        if args.pipeline:
            jobs = submit_pipeline(executor, slurm, cfg, args.corpus, folder, cluster)
        else:
            jobs = [("train", executor.submit(TrainJob(cfg)))]
        for name, job in jobs:
            print(
                f"{name}: job {job.job_id}, logs {job.paths.stdout} and {job.paths.stderr}",
                flush=True,
            )
        if args.wait:
            for name, job in jobs:
                print(f"{name}: {job.results()[0]}", flush=True)
        return 0

    return run_main(body)


def submit_pipeline(
    executor: submitit.AutoExecutor,
    slurm: SlurmConfig,
    cfg: config.TrainConfig,
    corpus: str | None,
    folder: Path,
    cluster: str | None,
) -> list[tuple[str, submitit.Job]]:
    """Preprocess (MPI ranks) -> train -> generate, each starting when the one before succeeded.

    On Slurm the order is kept by `--dependency=afterok`; locally each step waits for the last.
    """
    if not corpus:
        raise UserError("--pipeline needs --corpus, the recipe text to preprocess")
    from hpc_rnn import generate, preprocess

    prep = submitit.AutoExecutor(folder=folder, cluster=cluster)
    prep.update_parameters(
        name="hpc_rnn_preprocess",
        nodes=1,
        tasks_per_node=slurm.preprocess_ranks,
        cpus_per_task=1,
        timeout_min=60,
        slurm_srun_args=["--mpi=pmi2"],
    )
    gen = submitit.AutoExecutor(folder=folder, cluster=cluster)
    gen.update_parameters(
        name="hpc_rnn_generate",
        nodes=1,
        tasks_per_node=1,
        timeout_min=30,
        cpus_per_task=slurm.cpus_per_task,
        **({"gpus_per_node": 1} if slurm.gpus else {}),
    )
    steps: list[tuple[str, submitit.AutoExecutor, Any, tuple[Any, ...]]] = [
        (
            "preprocess",
            prep,
            run_command,
            (preprocess.main, [corpus, "--out", cfg.data, "--overwrite"]),
        ),
        ("train", executor, TrainJob(cfg), ()),
        (
            "generate",
            gen,
            run_command,
            (
                generate.main,
                [
                    "--checkpoint",
                    cfg.run,
                    "--n",
                    "20",
                    "--out",
                    str(Path(cfg.run) / "recipes"),
                    "--overwrite",
                ],
            ),
        ),
    ]
    jobs: list[tuple[str, submitit.Job]] = []
    for name, step_executor, fn, fn_args in steps:
        if jobs and cluster == "local":
            jobs[-1][1].results()
        elif jobs:
            step_executor.update_parameters(
                slurm_additional_parameters={"dependency": f"afterok:{jobs[-1][1].job_id}"}
            )
        jobs.append((name, step_executor.submit(fn, *fn_args)))
    return jobs


def run_command(main_fn: Any, argv: list[str]) -> int:
    """Run a command's main() as a job step; a non-zero exit fails the job (and its dependents)."""
    rc = main_fn(argv)
    if rc != 0:
        raise RuntimeError(f"{main_fn.__module__} {' '.join(argv)} exited with {rc}")
    return rc


if __name__ == "__main__":
    raise SystemExit(main())

"""Metrics on disk: one JSON line per record in RUN/metrics.jsonl, and a PNG of the curves."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

from hpc_rnn import atomic

METRICS_FILE = "metrics.jsonl"
PLOT_FILE = "curves.png"


class MetricsLog:
    """Appends records to RUN/metrics.jsonl, flushed per record so a killed job keeps them.

    A resumed run first drops records past the step it resumes from: they belong to steps that
    will be done again, and a step must appear once.
    """

    def __init__(self, run_dir: str | os.PathLike, resume_step: int = 0) -> None:
        self.path = Path(run_dir) / METRICS_FILE
        if self.path.exists():
            kept = [r for r in read(self.path) if r.get("step", 0) <= resume_step]
            atomic.write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))
        # Held open for the whole run: one open per record would cost more than the write.
        self._f = open(self.path, "a", encoding="utf-8")  # noqa: SIM115

    def write(self, record: dict[str, Any]) -> None:
        self._f.write(json.dumps(record) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def append(path: str | os.PathLike, record: dict[str, Any]) -> None:
    """One record more at the end of a JSONL file; a line cut short by a kill is skipped by read."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All complete records; a line cut short by a kill is ignored."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def plot_curves(run_dir: str | os.PathLike) -> Path | None:
    """Loss and accuracy against step, training and validation, to RUN/curves.png.

    matplotlib is an optional extra (`pip install hpc_rnn[plot]`): without it there is no PNG,
    and metrics.jsonl, the source of truth, is complete anyway.
    """
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    records = read(run_dir / METRICS_FILE)
    train = [r for r in records if r.get("kind") == "train"]
    val = [r for r in records if r.get("kind") in ("epoch", "val")]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((ax_loss, "loss", "loss"), (ax_acc, "acc", "accuracy")):
        ax.plot([r["step"] for r in train], [r[key] for r in train], label=f"train {label}")
        ax.plot(
            [r["step"] for r in val], [r[f"val_{key}"] for r in val], "o-", label=f"val {label}"
        )
        ax.set_xlabel("step")
        ax.set_ylabel(label)
        ax.legend()
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=90)
    plt.close(fig)
    out = run_dir / PLOT_FILE
    atomic.write_bytes(out, png.getvalue())
    return out

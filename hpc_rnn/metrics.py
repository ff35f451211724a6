"""Metrics on disk: one JSON line per record in RUN/metrics.jsonl, a PNG of the curves, and on
request the same scalars for TensorBoard in RUN/tensorboard."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

from hpc_rnn import atomic
from hpc_rnn.cli import UserError

METRICS_FILE = "metrics.jsonl"
PLOT_FILE = "curves.png"
TENSORBOARD_DIR = "tensorboard"
# The TensorBoard tag of each record field shown there; counts and times stay in metrics.jsonl.
BOARD_TAGS = {
    "loss": "train/loss",
    "acc": "train/accuracy",
    "lr": "train/learning_rate",
    "windows_per_s": "train/windows_per_s",
    "val_loss": "val/loss",
    "val_ppl": "val/perplexity",
    "val_acc": "val/accuracy",
    "val_recipe_loss": "val_recipe/loss",
    "val_recipe_ppl": "val_recipe/perplexity",
    "val_recipe_acc": "val_recipe/accuracy",
}


class MetricsLog:
    """Appends records to RUN/metrics.jsonl, flushed per record so a killed job keeps them.

    A resumed run first drops records past the step it resumes from: they belong to steps that
    will be done again, and a step must appear once. With `tensorboard`, each record goes to
    TensorBoard too.
    """

    def __init__(
        self, run_dir: str | os.PathLike, resume_step: int = 0, tensorboard: bool = False
    ) -> None:
        self.path = Path(run_dir) / METRICS_FILE
        if self.path.exists():
            kept = [r for r in read(self.path) if r.get("step", 0) <= resume_step]
            atomic.write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))
        # Held open for the whole run: one open per record would cost more than the write.
        self._f = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        self._board = Board(Path(run_dir), resume_step) if tensorboard else None

    def write(self, record: dict[str, Any]) -> None:
        self._f.write(json.dumps(record) + "\n")
        self._f.flush()
        if self._board is not None:
            self._board.write(record)

    def close(self) -> None:
        self._f.close()
        if self._board is not None:
            self._board.close()


def summary_writer_class() -> type:
    """torch's SummaryWriter; a UserError when the optional tensorboard package is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise UserError(
            "--tensorboard needs the tensorboard package: pip install -e .[tensorboard] "
            "(or train without --tensorboard; metrics.jsonl has every value anyway)"
        ) from None
    return SummaryWriter


class Board:
    """metrics.jsonl's records as TensorBoard scalars in RUN/tensorboard, one value a step per tag.

    Like MetricsLog, a resumed run hides what earlier starts wrote past the step it resumes
    from: TensorBoard drops events of steps >= `purge_step`, and the resumed step's own were
    written before the checkpoint and are kept.
    """

    def __init__(self, run_dir: Path, resume_step: int) -> None:
        writer = summary_writer_class()
        self._writer = writer(str(run_dir / TENSORBOARD_DIR), purge_step=resume_step + 1)
        self._last: dict[str, int] = {}  # tag: the step of its newest value

    def write(self, record: dict[str, Any]) -> None:
        step = record["step"]
        for key, tag in BOARD_TAGS.items():
            # An epoch's last step can be validated twice (a --val-every-steps step and the
            # epoch's end) with the same weights: the second would be a duplicate point.
            if key in record and self._last.get(tag, -1) < step:
                self._writer.add_scalar(tag, record[key], step)
                self._last[tag] = step
        # Flushed per record, as metrics.jsonl is, so that a killed job keeps its curves.
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


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

"""Every setting of every command, as typed dataclasses with their defaults in one place."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import typing
from dataclasses import dataclass, fields
from typing import Any, Literal

from hpc_rnn.cli import UserError


def flag(name: str) -> str:
    """The command-line spelling of a config field."""
    return "--" + name.replace("_", "-")


def choices(cls: type, name: str) -> tuple[Any, ...] | None:
    """The values a `Literal` field allows, None for a free field."""
    hint = typing.get_type_hints(cls)[name]
    return typing.get_args(hint) if typing.get_origin(hint) is Literal else None


def check_choices(cfg: Any) -> None:
    """The one place where choice fields are checked, whoever builds the config."""
    for f in fields(cfg):
        allowed = choices(type(cfg), f.name)
        if allowed is not None and getattr(cfg, f.name) not in allowed:
            raise UserError(
                f"{flag(f.name)} must be one of {', '.join(map(str, allowed))}; "
                f"got {getattr(cfg, f.name)!r}"
            )


@dataclass
class PreprocessConfig:
    corpus: str = ""
    out: str = ""
    window: int = 50  # words of context per training example (the lecture's sentence_len)
    min_count: int = 5  # words seen fewer times are removed (or mapped to <unk>)
    unk: bool = False  # map rare words to <unk> instead of removing them
    val_fraction: float = 0.05  # share of whole recipes held out for validation
    shard_tokens: int = 1 << 22  # tokens per HDF5 shard: bounds the writer's memory
    overwrite: bool = False


@dataclass
class ModelConfig:
    cell: Literal["lstm", "gru"] = "lstm"  # the lecture's LSTM, or a GRU
    hidden: int = 256
    layers: int = 1
    dropout: float = 0.0  # between stacked layers and before the output layer

    def __post_init__(self) -> None:
        check_choices(self)
        if self.hidden < 1 or self.layers < 1:
            raise UserError(
                f"--hidden and --layers must be at least 1, got {self.hidden}, {self.layers}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"--dropout must be in [0, 1), got {self.dropout}")


@dataclass
class TrainConfig:
    data: str = ""  # a directory written by hpc_rnn.preprocess
    run: str = ""  # checkpoints, metrics, plots and config go here
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    # "all": predict the next word at every position of a window (windows cut with stride =
    # window); "last": the lecture's, predict only the word after each window (stride 1).
    objective: Literal["all", "last"] = "all"
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = 3e-3  # for the effective batch (batch_size x world size); see README
    momentum: float = 0.0  # sgd only
    weight_decay: float = 0.0
    schedule: Literal["cosine", "constant"] = "cosine"  # after a linear warm-up
    warmup_steps: int = 10
    batch_size: int = 0  # windows per step on each rank; 0: by device (train.AUTO_BATCH)
    epochs: int = 20
    max_steps: int = 0  # stop after this many steps in all (0: run the epochs)
    clip: float = 1.0  # gradient norm clipping (0: off); the lecture warns of exploding gradients
    seed: int = 0
    ckpt_every_steps: int = 500
    ckpt_every_minutes: float = 10.0
    keep_last: int = 3  # checkpoints kept besides the best by validation loss
    resume: str = "auto"  # "auto" (newest valid checkpoint in run/), "never", or a checkpoint path
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: cuda if available
    log_every: int = 10  # steps between metric lines
    # Validation: next-word loss after a full window (the lecture's task, whatever the
    # objective), on at most this many evenly spaced held-out windows (0: all of them).
    val_windows: int = 8192
    val_every_steps: int = 0  # also validate (and checkpoint) every this many steps (0: per epoch)
    # Signals that mean "checkpoint at the next step boundary and exit": Slurm sends TERM at a
    # time limit or pre-emption and the --signal of the job script before it; INT is Ctrl-C
    # (a second one exits at once).
    stop_signals: str = "USR1,USR2,TERM,INT"
    requeue: bool = True  # under Slurm, requeue the job after a signal-checkpoint (rank 0)
    max_requeues: int = 50  # a job restarted this often is not requeued again
    dist_timeout_s: float = 600.0  # a rank waits this long for a dead peer before failing

    def __post_init__(self) -> None:
        check_choices(self)
        at_least = {
            "batch_size": 0,
            "epochs": 1,
            "max_steps": 0,
            "warmup_steps": 0,
            "ckpt_every_steps": 1,
            "keep_last": 1,
            "log_every": 1,
            "val_windows": 0,
            "val_every_steps": 0,
            "max_requeues": 0,
        }
        for name, low in at_least.items():
            if getattr(self, name) < low:
                raise UserError(f"{flag(name)} must be at least {low}, got {getattr(self, name)}")
        positive = ("lr", "ckpt_every_minutes", "dist_timeout_s")
        for name in positive:
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise UserError(
                    f"{flag(name)} must be a positive number, got {getattr(self, name)}"
                )
        for name in ("momentum", "weight_decay", "clip"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise UserError(
                    f"{flag(name)} must be 0 or a positive number, got {getattr(self, name)}"
                )


# Named starting points; command-line flags override them.
PRESETS: dict[str, dict[str, Any]] = {
    # The lecture exactly: one-hot LSTM(256) + softmax, SGD, batch 128, 200 epochs, last word.
    "seed": dict(
        objective="last",
        optimizer="sgd",
        lr=0.01,
        schedule="constant",
        warmup_steps=0,
        batch_size=128,
        epochs=200,
        clip=0.0,
        model=ModelConfig(),
    ),
}


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def describe(cfg: Any) -> str:
    """One line per setting, the form printed at start and kept beside outputs."""
    return json.dumps(to_dict(cfg), indent=2, sort_keys=True)


def add_arguments(parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = ()) -> None:
    """Expose every field of a config dataclass as a `--flag` with the dataclass default."""
    defaults = cls()
    for f in fields(cls):
        if f.name in skip:
            continue
        default = getattr(defaults, f.name)
        if isinstance(default, bool):
            parser.add_argument(
                flag(f.name), action=argparse.BooleanOptionalAction, default=default
            )
        else:
            parser.add_argument(
                flag(f.name), type=type(default), default=default, choices=choices(cls, f.name)
            )


def from_args(cls: type, args: argparse.Namespace, **extra: Any) -> Any:
    values = {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}
    values.update(extra)
    return cls(**values)


@dataclass
class GenerateConfig:
    checkpoint: str = ""  # a checkpoint step directory, or a run directory (its newest checkpoint)
    out: str = ""  # recipe-0001.txt ... and manifest.jsonl go here
    vocab: str = (
        ""  # a preprocessed data directory to read vocab.json from (default: the run's data)
    )
    n: int = 20  # recipes
    context: str = "carry"  # "carry" (state carried, one word per step) or "window" (the lecture's)
    temperature: float = 0.8  # 0: always the most likely word (the lecture's argmax)
    top_k: int = 0  # sample among the k most likely words only (0: all)
    top_p: float = 1.0  # sample among the most likely words that make up this probability
    prompt: str = ""  # the title to start from (default: a random title word)
    max_words: int = 600  # words written after the seed, at most, per recipe
    batch: int = 32  # recipes generated at once
    seed: int = 0
    device: str = "auto"  # "auto" (cuda if available), "cpu", "cuda"
    overwrite: bool = False  # replace recipes already in the output directory


@dataclass
class EvaluateConfig:
    checkpoint: str = ""  # a run directory (its newest checkpoint) or a step directory
    data: str = ""  # preprocessed data to evaluate on (default: the run's own)
    split: str = "val"
    corpus: str = ""  # evaluate on this recipe text instead (encoded with the model's vocabulary)
    windows: int = 8192  # held-out windows, evenly spaced (0: all)
    batch_size: int = 256
    recipes: str = ""  # score the recipe-*.txt files of this directory
    generate: int = 0  # also generate this many recipes per context mode and score them
    contexts: str = "carry,window"  # context modes for --generate
    reference: str = (
        ""  # corpus for the ingredient lexicon and the ceiling (default: the training corpus)
    )
    seed: int = 0
    device: str = "auto"
    out: str = ""  # write the report as JSON here too

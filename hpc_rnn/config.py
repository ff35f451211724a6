"""Every setting of every command, as typed dataclasses with their defaults in one place."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

from hpc_rnn.cli import UserError


def opt(default: Any, help: str) -> Any:
    """A config field and its --help text: the one place where a setting is explained."""
    return dataclasses.field(default=default, metadata={"help": help})


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
    corpus: str = opt("", "recipe text (MasterCook or Meal-Master layout)")
    out: str = opt("", "directory for vocab.json, shards and manifest")
    window: int = opt(50, "words of context per training example (the lecture's sentence_len)")
    min_count: int = opt(5, "words seen fewer times are removed (or mapped to <unk>)")
    unk: bool = opt(False, "map rare words to <unk> instead of removing them")
    val_fraction: float = opt(0.05, "share of whole recipes held out for validation")
    shard_tokens: int = opt(1 << 22, "tokens per HDF5 shard: bounds the writer's memory")
    overwrite: bool = opt(
        False, "replace an earlier output of this command in --out (never other files)"
    )


@dataclass
class ModelConfig:
    cell: Literal["lstm", "gru"] = opt("lstm", "the recurrent cell: the lecture's LSTM, or a GRU")
    hidden: int = opt(256, "units per recurrent layer")
    layers: int = opt(1, "stacked recurrent layers")
    dropout: float = opt(0.0, "dropout between stacked layers and before the output layer")
    copy: bool = opt(
        False,
        "add learned, context-dependent biases to the words already read in this recipe and to "
        "those read once, its list's unchecked items (a neural cache, Grave et al. 2017, with a "
        "checklist), so that directions can name their own ingredients",
    )
    checklist: int = opt(
        0,
        "with --copy, K learned sums over the words read once so far (what the list still has "
        "unchecked) that move every logit, so that directions go on while items remain; 0: off",
    )

    def __post_init__(self) -> None:
        check_choices(self)
        if self.hidden < 1 or self.layers < 1:
            raise UserError(
                f"--hidden and --layers must be at least 1, got {self.hidden}, {self.layers}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"--dropout must be in [0, 1), got {self.dropout}")
        if self.checklist < 0 or (self.checklist and not self.copy):
            raise UserError(
                f"--checklist counts the words the copy bias reads, so it needs --copy and a "
                f"count of at least 0, got {self.checklist}"
            )


@dataclass
class TrainConfig:
    data: str = opt("", "a directory written by hpc_rnn.preprocess")
    run: str = opt("", "directory for checkpoints, metrics, plots and config")
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    objective: Literal["all", "last", "recipe"] = opt(
        "all",
        "all: predict the next word at every position of a window (windows cut with stride = "
        "window); last: the lecture's, only the word after each window (stride 1); recipe: "
        "every word of whole recipes, the state running from each recipe's first word",
    )
    recipe_words: int = opt(
        1024, "with --objective recipe: words of a recipe trained as one sequence, at most"
    )
    bptt: int = opt(
        0,
        "with --objective recipe: an update every this many words of the recipes, the state "
        "carried from one to the next (truncated BPTT); 0: one update a batch of whole recipes",
    )
    optimizer: Literal["adamw", "sgd"] = opt("adamw", "the optimizer")
    lr: float = opt(3e-3, "learning rate for the effective batch (batch size x ranks); see README")
    momentum: float = opt(0.0, "SGD momentum")
    weight_decay: float = opt(0.0, "weight decay")
    schedule: Literal["cosine", "constant"] = opt(
        "cosine", "learning rate after the warm-up: cosine decay to 5 %%, or constant"
    )
    warmup_steps: int = opt(10, "steps of linear learning-rate warm-up")
    batch_size: int = opt(0, "windows per step on each rank; 0 picks by device (CPU 32, GPU 128)")
    epochs: int = opt(20, "passes over the training windows")
    max_steps: int = opt(0, "stop after this many steps in all (0: run the epochs)")
    clip: float = opt(1.0, "gradient norm clipping (0: off)")
    seed: int = opt(0, "seed of the initial weights and the data order")
    ckpt_every_steps: int = opt(500, "write a checkpoint every this many steps")
    ckpt_every_minutes: float = opt(10.0, "and every this many minutes")
    keep_last: int = opt(3, "checkpoints kept (those that verify), besides the best one")
    resume: str = opt(
        "auto",
        "auto: the run's newest checkpoint that loads; never: refuse a run that has one; or a "
        "checkpoint path, which seeds a run that has none of its own",
    )
    device: Literal["auto", "cpu", "cuda"] = opt("auto", "auto: this rank's GPU if there is one")
    log_every: int = opt(10, "steps between metric lines")
    progress_every_s: float = opt(
        60.0,
        "without a terminal (a Slurm log), a timestamped progress line with the ETA at the first "
        "log step after this many seconds (0: at every log step)",
    )
    tensorboard: bool = opt(
        False,
        "also write the metrics for TensorBoard to RUN/tensorboard (needs pip install -e "
        ".[tensorboard]); view them with: tensorboard --logdir RUN/tensorboard",
    )
    val_windows: int = opt(
        8192,
        "held-out windows per validation, evenly spaced (0: all); validation is the next word "
        "after a full window, whatever the objective",
    )
    val_every_steps: int = opt(
        0, "also validate (and checkpoint) every this many steps (0: once an epoch)"
    )
    stop_signals: str = opt(
        "USR1,USR2,TERM,INT",
        "signals that checkpoint at the next step and exit 75; USR1/USR2 (the job script's "
        "warning before the time limit) also requeue the job; a second INT exits at once",
    )
    requeue: bool = opt(True, "under Slurm, requeue the job after a time-limit checkpoint")
    max_requeues: int = opt(50, "a job restarted this often is not requeued again")
    dist_timeout_s: float = opt(600.0, "seconds a rank waits for a dead peer before failing")

    def __post_init__(self) -> None:
        check_choices(self)
        at_least = {
            "batch_size": 0,
            "epochs": 1,
            "max_steps": 0,
            "warmup_steps": 0,
            "ckpt_every_steps": 1,
            "recipe_words": 2,
            "bptt": 0,
            "keep_last": 1,
            "log_every": 1,
            "val_windows": 0,
            "val_every_steps": 0,
            "max_requeues": 0,
        }
        for name, low in at_least.items():
            if getattr(self, name) < low:
                raise UserError(f"{flag(name)} must be at least {low}, got {getattr(self, name)}")
        if self.bptt and self.objective != "recipe":
            raise UserError(
                f"--bptt cuts whole recipes, so it needs --objective recipe (got {self.objective})"
            )
        positive = ("lr", "ckpt_every_minutes", "dist_timeout_s")
        for name in positive:
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise UserError(
                    f"{flag(name)} must be a positive number, got {getattr(self, name)}"
                )
        for name in ("momentum", "weight_decay", "clip", "progress_every_s"):
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


def flatten(settings: dict[str, Any]) -> dict[str, Any]:
    """Training settings with the model's among them, as the train command's flags hold them."""
    flat = {k: v for k, v in settings.items() if k != "model"}
    model = settings.get("model", {})
    flat.update(to_dict(model) if dataclasses.is_dataclass(model) else model)
    return flat


def read_settings(path: str | os.PathLike) -> dict[str, Any]:
    """Training settings from a TOML file or a JSON one (an earlier run's config.json), each
    checked to be a setting of TrainConfig or ModelConfig."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UserError(f"--config {path}: {exc.strerror}") from None
    try:
        if path.suffix == ".json":
            settings = json.loads(raw)
        else:
            try:
                import tomllib
            except ImportError:  # Python 3.10
                raise UserError(
                    f"--config {path}: reading TOML needs Python 3.11; give a JSON file"
                ) from None
            settings = tomllib.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(
            f"--config {path} is not valid {path.suffix[1:] or 'TOML'}: {exc}"
        ) from None
    if not isinstance(settings, dict) or not isinstance(settings.get("model", {}), dict):
        raise UserError(f"--config {path}: expected a table of settings")
    flat = flatten(settings)
    known = {f.name for f in fields(TrainConfig)} | {f.name for f in fields(ModelConfig)}
    unknown = sorted(set(flat) - known)
    if unknown:
        raise UserError(
            f"--config {path}: unknown settings {', '.join(unknown)} (see python -m hpc_rnn.train --help)"
        )
    return flat


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def describe(cfg: Any) -> str:
    """One line per setting, the form printed at start and kept beside outputs."""
    return json.dumps(to_dict(cfg), indent=2, sort_keys=True)


def add_arguments(
    parser: argparse.ArgumentParser,
    cls: type,
    skip: tuple[str, ...] = (),
    help: dict[str, str] | None = None,
) -> None:
    """Expose every field of a config dataclass as a `--flag` with its default, choices and help
    (the field's own, unless `help` gives another for that field)."""
    defaults = cls()
    for f in fields(cls):
        if f.name in skip:
            continue
        default = getattr(defaults, f.name)
        text = (help or {}).get(f.name) or f.metadata.get("help", "")
        if "(default:" not in text:
            text += f" (default: {default if default != '' else 'none'})"
        if isinstance(default, bool):
            parser.add_argument(
                flag(f.name), action=argparse.BooleanOptionalAction, default=default, help=text
            )
        else:
            parser.add_argument(
                flag(f.name),
                type=type(default),
                default=default,
                choices=choices(cls, f.name),
                help=text,
            )


def from_args(cls: type, args: argparse.Namespace, **extra: Any) -> Any:
    values = {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}
    values.update(extra)
    return cls(**values)


# A recipe the model writes stops here at the latest: ten times the longest of the dev corpus
# (1,017 words), so that no --max-words makes generation run unbounded.
MAX_WORDS = 10_000


@dataclass(frozen=True)
class Sampling:
    """How a model writes: the settings generate.generate and generate.complete take, checked
    once, when made."""

    context: Literal["carry", "window"] = opt(
        "carry",
        "carry: the state runs through the recipe, one word a step; window: the lecture's, "
        "each word from the last 50",
    )
    # 0.7 rather than 0.8: the whole-recipe models name a third fewer ingredients their list
    # lacks at the same coverage and structure (README, "Whole recipes in view").
    temperature: float = opt(0.7, "sampling temperature; 0 always takes the most likely word")
    top_k: int = opt(0, "sample among the k most likely words only (0: all)")
    top_p: float = opt(1.0, "sample among the most likely words that make up this probability")
    max_words: int = opt(
        600, f"words written after the seed, at most, per recipe (up to {MAX_WORDS})"
    )
    batch: int = opt(32, "recipes generated at once")
    seed: int = opt(0, "sampling seed")

    def __post_init__(self) -> None:
        check_choices(self)
        if not (math.isfinite(self.temperature) and self.temperature >= 0):
            raise UserError(f"--temperature must be 0 (argmax) or positive, got {self.temperature}")
        if self.top_k < 0:
            raise UserError(
                f"--top-k must be 0 (off) or a positive number of words, got {self.top_k}"
            )
        if not 0 < self.top_p <= 1:
            raise UserError(f"--top-p must be in (0, 1], got {self.top_p}")
        for name in ("max_words", "batch"):
            if getattr(self, name) < 1:
                raise UserError(f"{flag(name)} must be at least 1, got {getattr(self, name)}")
        if self.max_words > MAX_WORDS:
            raise UserError(
                f"--max-words must be at most {MAX_WORDS}, got {self.max_words}: real recipes "
                "run to about 1,000 words, and a longer one has lost its way"
            )


def same_as(cls: type, name: str) -> Any:
    """A field with the default and help text of `cls`'s field `name`: a setting that two
    configs share is explained in one place."""
    shared = next(f for f in fields(cls) if f.name == name)
    return opt(shared.default, shared.metadata["help"])


@dataclass
class GenerateConfig:
    checkpoint: str = opt(
        "", "a run directory (its newest checkpoint that loads), a step directory, or its state.pt"
    )
    out: str = opt("", "directory for recipe-0001.txt ... and manifest.jsonl")
    vocab: str = opt(
        "", "a preprocessed data directory to read vocab.json from (default: the run's data)"
    )
    n: int = opt(20, "recipes to write")
    # The sampling settings stand among the others in the order --help has always listed them.
    context: Literal["carry", "window"] = same_as(Sampling, "context")
    temperature: float = same_as(Sampling, "temperature")
    top_k: int = same_as(Sampling, "top_k")
    top_p: float = same_as(Sampling, "top_p")
    prompt: str = opt("", "the title to start from (default: a random title word)")
    max_words: int = same_as(Sampling, "max_words")
    batch: int = same_as(Sampling, "batch")
    seed: int = same_as(Sampling, "seed")
    device: Literal["auto", "cpu", "cuda"] = opt("auto", "auto: a GPU if there is one")
    overwrite: bool = opt(False, "replace recipes already in the output directory")
    title: str | None = opt(
        None, "ask for a recipe of this title, with --ingredient or --ingredients (--n versions)"
    )
    ingredient: tuple[str, ...] = opt(
        (), "one ingredient of the recipe asked for, as a row or free text ('2 cups flour')"
    )
    ingredients: str = opt("", "a file of ingredients of the recipe asked for, one a line")
    complete: str = opt(
        "", "a MasterCook or Meal-Master file: new directions for each recipe's title and list"
    )
    servings: int = opt(4, "the Serving Size line of a recipe asked for with --title")
    categories: str = opt("", "the Categories line of a recipe asked for with --title")
    unknown: Literal["error", "unk"] = opt(
        "error", "words the vocabulary lacks: error names them; unk reads them as <unk>"
    )
    layout: Literal["archive", "tokens"] = opt(
        "archive", "archive: files as the training archive writes recipes; tokens: token text"
    )
    stick_to_list: bool = opt(
        False,
        "constrained decoding: once the ingredient list is written, never write a food word it "
        "lacks (food words: the training corpus's ingredient lexicon; see --reference)",
    )
    reference: str = opt(
        "", "with --stick-to-list: the corpus to derive food words from (default: the training one)"
    )

    def __post_init__(self) -> None:
        check_choices(self)
        if self.n < 1:
            raise UserError(f"--n must be at least 1, got {self.n}")
        self.sampling()  # checks the sampling settings now, before any checkpoint is read

    def sampling(self) -> Sampling:
        """The flags that say how the model writes, as generate.generate and complete take them."""
        return Sampling(**{f.name: getattr(self, f.name) for f in fields(Sampling)})


@dataclass
class EvaluateConfig:
    checkpoint: str = opt(
        "", "a run directory (its newest checkpoint that loads), a step directory, or its state.pt"
    )
    data: str = opt("", "preprocessed data to evaluate on (default: the run's own)")
    split: Literal["val", "train"] = opt("val", "which split of --data")
    corpus: str = opt("", "evaluate on this recipe text instead (read with the model's vocabulary)")
    windows: int = opt(8192, "held-out windows, evenly spaced (0: all)")
    batch_size: int = opt(256, "windows per forward pass")
    recipes: str = opt("", "also score the recipe-*.txt files of this directory")
    generate: int = opt(0, "also generate this many recipes per context mode and score them")
    contexts: str = opt("carry,window", "context modes for --generate")
    reference: str = opt(
        "",
        "corpus for the ingredient lexicon and the ceiling scores (default: the training corpus)",
    )
    seed: int = opt(0, "sampling seed for --generate and --given")
    temperature: float = same_as(Sampling, "temperature")
    device: Literal["auto", "cpu", "cuda"] = opt("auto", "auto: a GPU if there is one")
    given: str = opt(
        "",
        "score directions written for each recipe's title and list of this MasterCook or "
        "Meal-Master file, or 'val' for the run's validation recipes (Kiddon et al. 2016)",
    )
    given_limit: int = opt(0, "with --given: score only the first this many recipes (0: all)")
    stick_to_list: bool = same_as(GenerateConfig, "stick_to_list")
    out: str = opt("", "also write the report as JSON to this file")

    def __post_init__(self) -> None:
        check_choices(self)
        self.sampling()  # checks --temperature now, before any checkpoint is read

    def sampling(self, context: str = "carry") -> Sampling:
        """How --generate (in `context`) and --given write."""
        return Sampling(context=context, temperature=self.temperature, seed=self.seed)

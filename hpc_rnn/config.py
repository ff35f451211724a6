"""Every setting of every command, as typed dataclasses with their defaults in one place."""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, fields
from typing import Any


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
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        else:
            parser.add_argument(flag, type=type(default), default=default)


def from_args(cls: type, args: argparse.Namespace, **extra: Any) -> Any:
    values = {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}
    values.update(extra)
    return cls(**values)

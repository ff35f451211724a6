"""The data-format record (no figure, no target): the token stream's size and read speed against
explicit windows."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from hpc_rnn import shards
from hpc_rnn.bench.harness import Context, Figure, isolated, measure
from hpc_rnn.vocab import load_vocab


def format_rates(data: str, work: str, n_windows: int, repeats: int) -> dict[str, Any]:
    """Read speed of load_stream (checksums included) vs an HDF5 file of explicit uint16
    windows and targets, written once here, contiguous and uncompressed (the cheaper read)."""
    stream = shards.load_stream(data, "train")
    window = load_vocab(data).window
    every = np.lib.stride_tricks.sliding_window_view(stream[:-1], window)
    n = min(n_windows or len(every), len(every))
    path = Path(work) / "explicit-windows.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("windows", data=every[:n])
        f.create_dataset("targets", data=stream[window : window + n])
    manifest = shards.read_manifest(data)
    stream_bytes = sum(
        (Path(data) / s["file"]).stat().st_size for s in manifest["shards"] if s["split"] == "train"
    )
    stream_windows = manifest["splits"]["train"]["n_windows"]
    cpu = torch.device("cpu")

    def read_stream() -> float:
        shards.load_stream(data, "train")
        return stream_windows

    def read_explicit() -> float:
        with h5py.File(path, "r") as f:
            windows, _ = f["windows"][...], f["targets"][...]
        return len(windows)

    stream_rate = measure(read_stream, repeats=repeats, device=cpu)
    explicit_rate = measure(read_explicit, repeats=repeats, device=cpu)
    explicit_bytes = path.stat().st_size
    path.unlink()
    return {
        "stream": stream_rate,
        "explicit": explicit_rate,
        "stream_bytes": stream_bytes,
        "stream_windows": stream_windows,
        "explicit_bytes": explicit_bytes,
        "explicit_windows": n,
        "explicit_bytes_all": stream_windows * (window + 1) * stream.dtype.itemsize,
    }


def run(ctx: Context) -> list[Figure]:
    found = isolated(
        format_rates, str(ctx.data), str(ctx.work), ctx.sizes.format_windows, ctx.sizes.repeats
    )
    stream, explicit = found["stream"], found["explicit"]
    mb_s = {
        "stream": stream.scaled(found["stream_bytes"] / found["stream_windows"] / 1e6).median,
        "explicit": explicit.scaled(
            found["explicit_bytes"] / found["explicit_windows"] / 1e6
        ).median,
    }
    ctx.data_format = {
        "train_shard_bytes": found["stream_bytes"],
        "explicit_windows_bytes": found["explicit_bytes_all"],
        "size_ratio": found["explicit_bytes_all"] / found["stream_bytes"],
        "train_windows": found["stream_windows"],
        "explicit_windows_read": found["explicit_windows"],
        "read_mb_per_s": mb_s,
        "read_windows_per_s": {
            "stream": dataclasses.asdict(stream),
            "explicit": dataclasses.asdict(explicit),
        },
    }
    return []

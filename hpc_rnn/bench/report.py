"""The bench's table (bench.md, also printed) and its plot (bench.png)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hpc_rnn.bench.harness import Figure, Stats


def _num(x: float) -> str:
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.1f}" if abs(x) >= 10 else f"{x:.3g}"


def _side(stats: Stats, unit: str, bound: str = "") -> str:
    middle = f"{bound}{_num(stats.median)} {unit}"
    if stats.min == stats.max:
        return middle
    return f"{middle} ({_num(stats.min)}–{_num(stats.max)})"


def ratio_text(f: Figure) -> str:
    return f"{f.bound}{_num(f.ratio)}×"


def _target_text(f: Figure) -> str:
    if f.target is None:
        return "report"
    return f"{'≥' if f.goal == 'at_least' else '≤'} {f.target:g}×"


def _met_text(f: Figure) -> str:
    return {None: "–", True: "yes", False: "no"}[f.met]


def markdown(report: dict[str, Any], figures: list[Figure]) -> str:
    m = report["machine"]
    bound = {"<": ">"}  # a ratio below a bound means the project's time is above one
    lines = [
        f"# Benchmarks ({report['mode']}, {report['date']})",
        "",
        f"{m['device_name']}, {m['cores']} cores, torch {m['torch']} ({m['torch_threads']} threads), "
        f"device {m['device']}; load average {m['load_average'][0]:.2f} at the start, "
        f"{report['load_average_end'][0]:.2f} at the end; {report['seconds']:.0f} s in all.",
        "",
        "| figure | project | baseline | ratio | target | met? | peak RSS project / baseline |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        rss = " / ".join(
            f"{f.peak_rss_mb[k]:.0f} MB" for k in ("project", "baseline") if k in f.peak_rss_mb
        )
        lines.append(
            f"| `{f.name}` | {_side(f.project, f.unit, bound.get(f.bound, ''))} | "
            f"{_side(f.baseline, f.unit)} | {ratio_text(f)} | {_target_text(f)} | {_met_text(f)} | "
            f"{rss or '–'} |"
        )
    lines += ["", "Project and baseline: median of the repeats (min–max)."]
    for f in figures:
        lines.append(f"- `{f.name}`: {f.what}" + "".join(f"; {n}" for n in f.notes) + ".")
    fmt = report["data_format"]
    if fmt:
        lines += [
            "",
            "## Data format: token stream vs explicit windows",
            "",
            "| | token stream (shards) | explicit uint16 windows + targets |",
            "|---|---|---|",
            f"| bytes, train split | {fmt['train_shard_bytes']:,} | {fmt['explicit_windows_bytes']:,} "
            f"({fmt['size_ratio']:.0f}×, computed) |",
            f"| read MB/s | {_num(fmt['read_mb_per_s']['stream'])} | {_num(fmt['read_mb_per_s']['explicit'])} |",
            f"| read windows/s | {_num(fmt['read_windows_per_s']['stream']['median'])} | "
            f"{_num(fmt['read_windows_per_s']['explicit']['median'])} "
            f"({fmt['explicit_windows_read']:,} windows) |",
        ]
    if report["notes"]:
        lines += ["", "Notes:", *(f"- {n}" for n in report["notes"])]
    return "\n".join(lines) + "\n"


def plot(path: Path, figures: list[Figure], report: dict[str, Any]) -> None:
    """Bars of the ratios on a log scale, each with its target as a black tick."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 0.6 * len(figures) + 1.5))
    names = [f.name for f in figures]
    colors = [{None: "0.6", True: "tab:green", False: "tab:red"}[f.met] for f in figures]
    # Bars grow from 1x, to the right for a gain and to the left for a loss.
    ax.barh(names, [f.ratio - 1 for f in figures], left=1, color=colors)
    ax.axvline(1, color="0.3", linewidth=0.8)
    for i, f in enumerate(figures):
        if f.target is not None:
            ax.plot([f.target, f.target], [i - 0.4, i + 0.4], color="black", linewidth=2)
        ax.text(f.ratio, i, f" {ratio_text(f)}", va="center")
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.set_xlabel("ratio (project vs baseline); black: target")
    ax.set_title(
        f"hpc_rnn bench ({report['mode']}, {report['machine']['device_name']})", fontsize=9
    )
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, path)

"""scripts/demo.sh, the README's first command, run as a user runs it (on a smaller corpus and
fewer epochs through its environment, with the venv this suite runs in, so it installs nothing
new): every output it promises, and a second run that resumes instead of starting over."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from conftest import clean_env, run_in_repo

from hpc_rnn import checkpoint
from hpc_rnn.demo_corpus import EXPORT_LINE


def demo(out: Path, epochs: int) -> str:
    env = clean_env(
        DEMO_RECIPES="60",
        DEMO_EPOCHS=str(epochs),
        HPC_RNN_VENV=str(Path(sys.executable).parents[1]),
    )
    done = run_in_repo(["bash", "scripts/demo.sh", out], timeout=600, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_demo_script_writes_every_output_and_a_rerun_resumes(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    first = demo(out, epochs=1)
    assert (out / "corpus.txt").read_text().count(EXPORT_LINE) == 60
    assert (out / "data" / "manifest.json").is_file() and (out / "data" / "vocab.json").is_file()
    run = out / "run"
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((run / "config.json").read_text())["epochs"] == 1
    recipes = sorted(p.name for p in (out / "recipes").glob("recipe-*.txt"))
    assert recipes == [f"recipe-000{i}.txt" for i in range(1, 6)]
    assert len((out / "recipes" / "manifest.jsonl").read_text().splitlines()) == 5
    # It ends by showing the first recipe.
    shown = first.split("first generated recipe")[1].split("\n", 1)[1]
    assert shown.strip() == (out / "recipes" / "recipe-0001.txt").read_text().strip()
    step = checkpoint.load_given(run)[1]["step"]
    assert "starting fresh" in first

    second = demo(out, epochs=2)
    assert f"resuming at step {step} (epoch 1)" in second
    assert checkpoint.load_given(run)[1]["position"]["epoch"] == 2

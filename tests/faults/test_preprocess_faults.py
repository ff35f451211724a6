"""Preprocessing's faults and bad input, through the real commands with real files, processes
and MPI ranks: what the user sees, and that nothing written before is lost."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import STAMP, clean_env, mpiexec, run_in_repo, snapshot, train_command, wait_until
from test_preprocess import _names, _refused
from test_text import HEADERS

from hpc_rnn import shards, text
from hpc_rnn.demo_corpus import generate_recipes
from hpc_rnn.shards import DataFormatError, load_stream, read_manifest
from hpc_rnn.vocab import VOCAB_FILE, VocabError, load_vocab

Run = Callable[..., subprocess.CompletedProcess[str]]
EXPORT = "* Exported from MasterCook *"


@pytest.fixture
def earlier(demo_data: Path, tmp_path: Path) -> Path:
    """An earlier good output, which a failed or refused run must leave byte for byte."""
    return Path(shutil.copytree(demo_data, tmp_path / "data"))


def _corpus(path: Path, recipes: list[str]) -> Path:
    path.write_text("".join(recipes), encoding="utf-8")
    return path


def _preprocess_argv(*args: str | os.PathLike) -> list[str]:
    return [sys.executable, "-m", "hpc_rnn.preprocess", *map(str, args)]


def _run_group(cmd: list[str], *, timeout: float, env: dict[str, str]) -> tuple[int, str, float]:
    """Run `cmd` in its own process group; on timeout kill the whole group (ranks included)
    and fail, so a hang is a test failure, not a hung test run."""
    started = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"{cmd[0]} still running after {timeout:.0f} s (ranks hung):\n{out[-3000:]}")
    return proc.returncode, out, time.monotonic() - started


# ---------------------------------------------------------------------------------------------
# --overwrite deletes only what this command wrote


def test_overwrite_refuses_a_directory_that_holds_the_users_files(
    demo_corpus: Path, earlier: Path, run_preprocess: Run
):
    (earlier / "corpus.txt").write_bytes(demo_corpus.read_bytes())
    (earlier / "notes.md").write_text("which corpus made this data")
    (earlier / "plots").mkdir()
    (earlier / "plots" / "loss.png").write_bytes(b"\x89PNG")
    before = snapshot(earlier)
    line = _refused(run_preprocess(demo_corpus, "--out", earlier, "--overwrite"), "did not write")
    assert "corpus.txt" in line and "notes.md" in line and "plots" in line
    assert snapshot(earlier) == before
    assert _names(earlier.parent) == ["data"]


def test_overwrite_replaces_every_file_of_the_earlier_output_and_nothing_else(
    demo_corpus: Path, tmp_path: Path, run_preprocess: Run
):
    out = tmp_path / "data"
    proc = run_preprocess(demo_corpus, "--out", out, "--shard-tokens", "2000")
    assert proc.returncode == 0, proc.stderr
    assert len(read_manifest(out)["shards"]) > 4
    proc = run_preprocess(demo_corpus, "--out", out, "--overwrite")
    assert proc.returncode == 0, proc.stderr
    listed = sorted(s["file"] for s in read_manifest(out)["shards"])
    assert _names(out) == sorted([*listed, "manifest.json", "vocab.json"])
    assert _names(tmp_path) == ["data"]  # no staging or aside directory left


@pytest.mark.parametrize("damage", ["truncated", "lists a user file"])
def test_overwrite_refuses_when_the_manifest_cannot_prove_what_is_ours(
    demo_corpus: Path, earlier: Path, run_preprocess: Run, damage: str
):
    manifest = earlier / "manifest.json"
    if damage == "truncated":
        manifest.write_bytes(manifest.read_bytes()[:200])
    else:
        (earlier / "thesis.tex").write_text("precious")
        doc = json.loads(manifest.read_text())
        doc["shards"][0]["file"] = "thesis.tex"
        manifest.write_text(json.dumps(doc))
    before = snapshot(earlier)
    _refused(run_preprocess(demo_corpus, "--out", earlier, "--overwrite"), "manifest")
    assert snapshot(earlier) == before


# ---------------------------------------------------------------------------------------------
# vocab.json and manifest.json that do not fit or do not parse


@pytest.fixture(scope="module")
def other_runs(run_preprocess: Run, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Outputs of two other preprocess runs, of a larger and of a smaller corpus."""
    made = {}
    for other, n in (("more words", 400), ("fewer words", 40)):
        directory = tmp_path_factory.mktemp("other")
        corpus = _corpus(directory / "corpus.txt", list(generate_recipes(n, 3)))
        proc = run_preprocess(corpus, "--out", directory / "data")
        assert proc.returncode == 0, proc.stderr
        made[other] = directory / "data"
    return made


@pytest.mark.parametrize("other", ["more words", "fewer words"])
def test_vocab_json_from_another_run_is_refused(
    earlier: Path, other_runs: dict[str, Path], other: str
):
    theirs = load_vocab(other_runs[other]).n_words
    ours = load_vocab(earlier).n_words
    assert (theirs > ours) == (other == "more words") and theirs != ours
    shutil.copy(other_runs[other] / VOCAB_FILE, earlier / VOCAB_FILE)
    with pytest.raises(VocabError, match=r"another preprocess run.*preprocess the corpus again"):
        load_vocab(earlier)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garble(path: Path) -> None:
    path.write_bytes(b"\xff\xfe" + path.read_bytes()[2:])


def _edit_json(path: Path, edit: Callable[[dict], None]) -> None:
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


DAMAGE = {
    "vocab truncated": (VOCAB_FILE, _truncate),
    "vocab garbled": (VOCAB_FILE, _garble),
    "vocab hash edited": (
        VOCAB_FILE,
        lambda p: _edit_json(p, lambda d: d.update(hash="0" * 64)),
    ),
    "vocab word edited": (
        VOCAB_FILE,
        lambda p: _edit_json(p, lambda d: d["decoding"].__setitem__(3, "zyzzyva")),
    ),
    "vocab key missing": (VOCAB_FILE, lambda p: _edit_json(p, lambda d: d.pop("counts"))),
    "manifest truncated": ("manifest.json", _truncate),
    "manifest garbled": ("manifest.json", _garble),
    "manifest key missing": ("manifest.json", lambda p: _edit_json(p, lambda d: d.pop("window"))),
    "manifest shard entry broken": (
        "manifest.json",
        lambda p: _edit_json(p, lambda d: d["shards"][0].pop("sha256")),
    ),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_unreadable_vocab_or_manifest_says_preprocess_again(earlier: Path, damage: str):
    name, spoil = DAMAGE[damage]
    spoil(earlier / name)
    with pytest.raises((VocabError, DataFormatError), match="preprocess the corpus again"):
        load_vocab(earlier)
    if name == "manifest.json":
        with pytest.raises(DataFormatError, match="preprocess the corpus again"):
            load_stream(earlier, "train")


@pytest.mark.parametrize(
    "damage",
    ["byte flipped", "truncated", "missing", "vocab of more words", "vocab of fewer words"],
)
def test_training_on_damaged_data_is_one_error_line(
    earlier: Path, other_runs: dict[str, Path], tmp_path: Path, damage: str
):
    shard = earlier / read_manifest(earlier)["shards"][0]["file"]
    if damage == "byte flipped":
        data = bytearray(shard.read_bytes())
        data[len(data) // 2] ^= 0xFF
        shard.write_bytes(bytes(data))
    elif damage == "truncated":
        _truncate(shard)
    elif damage == "missing":
        shard.unlink()
    else:
        other = other_runs[damage.removeprefix("vocab of ")]
        shutil.copy(other / VOCAB_FILE, earlier / VOCAB_FILE)
    before = snapshot(earlier)
    proc = run_in_repo(
        train_command(earlier, tmp_path / "run", "--epochs", "1", "--hidden", "16"), timeout=120
    )
    _refused(proc, "preprocess")
    assert snapshot(earlier) == before


# ---------------------------------------------------------------------------------------------
# A failure on one MPI rank ends every rank


@pytest.mark.mpi
def test_full_disk_on_one_rank_ends_every_rank(tmp_path: Path, demo_data: Path, small_disk: Path):
    # Rank 0's half of the corpus is a preamble (no recipes), so only rank 1 writes shards
    # while the ranks work apart, and only rank 1 meets the full disk: the OSError is on one
    # rank, and rank 0 must not wait for it for ever (it hung until killed before).
    preamble = "An archive of recipes, gathered from a BBS.\n" * 30_000
    recipes = "".join(generate_recipes(1200, 7))
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(preamble + recipes, encoding="utf-8")
    out = Path(shutil.copytree(demo_data, small_disk / "data"))
    free = shutil.disk_usage(small_disk).free
    (small_disk / "filler").write_bytes(b"\0" * (free - 150_000))
    before = snapshot(small_disk)
    args = _preprocess_argv(corpus, "--out", out, "--overwrite", "--shard-tokens", "20000")
    rc, output, seconds = _run_group([mpiexec(), "-n", "2", *args], timeout=60, env=clean_env())
    assert rc != 0, output
    assert seconds < 30
    errors = [ln for ln in output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "No space left on device" in errors[0], output
    assert "Traceback" not in output
    assert snapshot(small_disk) == before
    assert sorted(_names(small_disk)) == ["data", "filler"]  # no staging directory left


def _rank_pid(parent: int, rank: int, timeout: float = 30) -> int:
    """The PID of MPI rank `rank` among the descendants of `parent` (by its PMI_RANK)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                environ = (proc / "environ").read_bytes().split(b"\0")
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if (
                f"PMI_RANK={rank}".encode() in environ
                and f"HPC_RNN_TEST_PARENT={parent}".encode() in environ
                and b"hpc_rnn.preprocess" in cmdline
            ):
                return int(proc.name)
        time.sleep(0.1)
    pytest.fail(f"rank {rank} did not start")


@pytest.mark.mpi
def test_ctrl_c_on_one_rank_ends_every_rank(tmp_path: Path):
    # Ctrl-C reaching one rank only (a signal sent to one PID) raises KeyboardInterrupt there,
    # outside any step the ranks agree on: the other rank must not wait for it for ever.
    corpus = _corpus(tmp_path / "corpus.txt", list(generate_recipes(3000, 1)) * 4)
    cmd = [mpiexec(), "-n", "2", *_preprocess_argv(corpus, "--out", tmp_path / "data")]
    env = clean_env(HPC_RNN_TEST_PARENT=str(os.getpid()))
    started = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        rank1 = _rank_pid(os.getpid(), 1)
        # signalled while writing shards (the staging directory exists), not while importing
        wait_until(lambda: list(tmp_path.glob(".data.staging-*")), 60, "the staging directory")
        os.kill(rank1, signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"ranks still running 30 s after Ctrl-C on rank 1:\n{out[-3000:]}")
    assert proc.returncode != 0, out
    assert time.monotonic() - started < 60
    assert "rank 1 of 2: KeyboardInterrupt; stopping every rank" in out
    assert not (tmp_path / "data").exists()
    assert out.count("error:") == 1, out


def test_srun_ends_the_step_when_a_task_fails(tmp_path: Path):
    # A stand-in srun records how jobs/preprocess.sh starts the ranks.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text(f'#!/bin/sh\necho "$@" > {tmp_path / "srun.args"}\n')
    (bin_dir / "srun").chmod(0o755)
    env = clean_env(PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", CORPUS="c.txt")
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        ["bash", str(root / "jobs" / "preprocess.sh")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    args = (tmp_path / "srun.args").read_text().split()
    assert "--kill-on-bad-exit=1" in args
    assert args[args.index("-m") + 1] == "hpc_rnn.preprocess"


# ---------------------------------------------------------------------------------------------
# A full disk while writing shards


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs: a real full disk (needs root and mount; skipped otherwise, with
    test_write_failing_half_way_keeps_the_earlier_output in test_preprocess.py covering the
    same path by an injected OSError)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
            check=True,
            capture_output=True,
            timeout=10,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here ({exc})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, timeout=10)


def test_full_disk_while_writing_shards(
    demo_corpus: Path, demo_data: Path, small_disk: Path, run_preprocess: Run
):
    out = Path(shutil.copytree(demo_data, small_disk / "data"))
    # Fill the disk but for ~100 kB: the new shards (~160 kB) do not fit.
    free = shutil.disk_usage(small_disk).free
    (small_disk / "filler").write_bytes(b"\0" * (free - 100_000))
    before = snapshot(small_disk)
    proc = run_preprocess(demo_corpus, "--out", out, "--overwrite")
    line = _refused(proc, "No space left on device", "earlier output is unchanged")
    assert str(out) in line
    assert snapshot(small_disk) == before
    assert sorted(_names(small_disk)) == ["data", "filler"]


# ---------------------------------------------------------------------------------------------
# Encoding, decided recipe by recipe


def test_one_stray_byte_spoils_only_its_own_recipe_on_1_and_2_ranks(tmp_path: Path):
    recipes = [
        r.replace("\n\n", "\n\nCrème fraîche, purée.\n\n", 1) for r in generate_recipes(200, 7)
    ]
    data = "".join(recipes).encode("utf-8")
    stray = recipes[50].encode("utf-8")
    data = data.replace(stray, stray.replace(b"Cr\xc3\xa8me", b"Cr\xe8me"), 1)  # cp1252 'è'
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(data)
    outputs = {}
    for ranks in (1, 2):
        out = tmp_path / f"data{ranks}"
        cmd = _preprocess_argv(corpus, "--out", out)
        if ranks > 1:
            cmd = [mpiexec(), "-n", str(ranks), *cmd]
        proc = run_in_repo(cmd, timeout=120)
        assert proc.returncode == 0, proc.stderr
        warnings = [ln for ln in proc.stderr.splitlines() if re.match(STAMP + "warning: ", ln)]
        assert len(warnings) == 1, proc.stderr
        assert "1 of 200 recipes are not valid UTF-8" in warnings[0]
        outputs[ranks] = out
    words = load_vocab(outputs[1]).words
    assert "crème" in words and "fraîche" in words
    assert not [w for w in words if "Ã" in w or "ã" in w]
    assert (outputs[1] / VOCAB_FILE).read_bytes() == (outputs[2] / VOCAB_FILE).read_bytes()
    for split in shards.SPLITS:
        assert load_stream(outputs[1], split).tolist() == load_stream(outputs[2], split).tolist()
    assert read_manifest(outputs[2])["recipe_encodings"] == {
        "utf-8": 199,
        "cp1252": 1,
        "latin-1": 0,
    }


# ---------------------------------------------------------------------------------------------
# Memory: one giant recipe costs no more than a normal corpus


def _peak_rss_mb(cmd: list[str]) -> float:
    # A fresh Python waits for the command, so RUSAGE_CHILDREN holds its peak alone.
    code = (
        "import resource, subprocess, sys; "
        "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode; "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 if rc == 0 else -rc)"
    )
    proc = run_in_repo([sys.executable, "-c", code, *cmd], timeout=300)
    assert proc.returncode == 0, proc.stderr
    peak = float(proc.stdout.strip())
    assert peak > 0, proc.stderr
    return peak


def test_one_huge_recipe_stays_within_the_stated_memory_bound(demo_corpus: Path, tmp_path: Path):
    baseline = _peak_rss_mb(_preprocess_argv(demo_corpus, "--out", tmp_path / "small"))
    # 8 MB of one recipe on one line (the case was 11 MB at 250 MB RSS), of words that
    # repeat as a recipe's do, behind the normal recipes.
    line = " ".join(f"stir{i % 500} the crème, {i % 7}/2 cup;" for i in range(300_000))
    huge = f"{EXPORT}\n\n  Huge\n\n{line}\n"
    assert len(huge.encode()) > 8_000_000
    corpus = tmp_path / "huge.txt"
    corpus.write_text(demo_corpus.read_text(encoding="utf-8") + huge, encoding="utf-8")
    peak = _peak_rss_mb(_preprocess_argv(corpus, "--out", tmp_path / "huge"))
    # The bound: ~10 x MAX_PIECE_BYTES (10 MB) plus the writer's 2 x shard buffer, above the
    # demo's baseline; the margin is twice that. The old reader took ~22 x the recipe.
    assert peak - baseline < 50, (baseline, peak)
    assert read_manifest(tmp_path / "huge")["recipes"] == 201


# ---------------------------------------------------------------------------------------------
# An empty validation split


@pytest.mark.parametrize("case", ["one recipe", "--val-fraction 0"])
def test_empty_validation_split_is_a_loud_warning(
    demo_corpus: Path, tmp_path: Path, run_preprocess: Run, case: str
):
    if case == "one recipe":
        corpus = _corpus(tmp_path / "one.txt", list(generate_recipes(1, 7)))
        proc = run_preprocess(corpus, "--out", tmp_path / "data", "--min-count", "1")
    else:
        proc = run_preprocess(demo_corpus, "--out", tmp_path / "data", "--val-fraction", "0")
    assert proc.returncode == 0, proc.stderr
    warnings = [ln for ln in proc.stderr.splitlines() if re.match(STAMP + "warning: ", ln)]
    assert len(warnings) == 1, proc.stderr
    assert "validation split is empty" in warnings[0]
    assert "no validation loss" in warnings[0]
    assert read_manifest(tmp_path / "data")["splits"]["val"]["n_windows"] == 0


# ---------------------------------------------------------------------------------------------
# Recipe header variants, found by the command


def test_every_header_variant_is_found_by_preprocess(tmp_path: Path, run_preprocess: Run):
    recipes = list(generate_recipes(3 * len(HEADERS), 11))
    mixed = [r.replace(EXPORT, HEADERS[i % len(HEADERS)], 1) for i, r in enumerate(recipes)]
    assert all(r.startswith(EXPORT) for r in recipes)
    corpus = tmp_path / "mixed.txt"
    corpus.write_bytes("".join(mixed).replace("\n", "\r\n").encode("utf-8"))
    proc = run_preprocess(corpus, "--out", tmp_path / "data")
    assert proc.returncode == 0, proc.stderr
    assert read_manifest(tmp_path / "data")["recipes"] == len(recipes)
    assert f"preprocessed {len(recipes)} recipes" in proc.stdout
    assert sum(1 for _ in text.iter_recipes(corpus)) == len(recipes)

"""Files that appear whole or not at all."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hpc_rnn import atomic


def test_write_bytes_creates_the_whole_file_and_nothing_else(tmp_path: Path):
    data = os.urandom(3 << 20)
    atomic.write_bytes(tmp_path / "blob.bin", data)
    assert (tmp_path / "blob.bin").read_bytes() == data
    assert [p.name for p in tmp_path.iterdir()] == ["blob.bin"]


def test_write_bytes_replaces_earlier_content(tmp_path: Path):
    path = tmp_path / "f.txt"
    atomic.write_bytes(path, b"old content that is longer")
    atomic.write_bytes(path, b"new")
    assert path.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_failed_write_keeps_the_previous_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
):
    path = tmp_path / "f.txt"
    atomic.write_bytes(path, b"previous")

    def disk_full(*args, **kwargs):
        raise OSError("disk full")

    # fsync fails after the new bytes went to the temporary file; replace, at the rename
    monkeypatch.setattr(atomic.os, failing, disk_full)
    with pytest.raises(OSError, match="disk full"):
        atomic.write_bytes(path, b"new content, never complete")
    monkeypatch.undo()
    assert path.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_failed_first_write_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(atomic.os, "replace", lambda *a: (_ for _ in ()).throw(OSError("full")))
    with pytest.raises(OSError):
        atomic.write_bytes(tmp_path / "new.txt", b"data")
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


def test_write_json_round_trip(tmp_path: Path):
    obj = {"b": [1, 2, 3], "a": "crème brûlée", "c": {"x": None}}
    atomic.write_json(tmp_path / "x.json", obj)
    assert json.loads((tmp_path / "x.json").read_text(encoding="utf-8")) == obj


def test_staged_dir_publishes_whole_or_keeps_the_old(tmp_path: Path):
    final = tmp_path / "out"
    with atomic.staged_dir(final) as tmp:
        (tmp / "a").write_text("1")
    assert (final / "a").read_text() == "1"

    with pytest.raises(RuntimeError), atomic.staged_dir(final, replace=["a"]) as tmp:
        (tmp / "a").write_text("2")
        raise RuntimeError("failed half-way")
    assert (final / "a").read_text() == "1"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]

    with atomic.staged_dir(final, replace=["a"]) as tmp:
        (tmp / "b").write_text("3")
    assert sorted(p.name for p in final.iterdir()) == ["b"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_publishing_over_an_earlier_output_deletes_only_the_files_named_ours(tmp_path: Path):
    final = tmp_path / "out"
    final.mkdir()
    (final / "ours.bin").write_text("old")
    (final / "notes.txt").write_text("the user's")
    with pytest.raises(FileExistsError), atomic.staged_dir(final) as tmp:
        (tmp / "ours.bin").write_text("new")
    assert (final / "ours.bin").read_text() == "old"
    with atomic.staged_dir(final, replace=["ours.bin"]) as tmp:
        (tmp / "ours.bin").write_text("new")
    assert sorted(p.name for p in final.iterdir()) == ["ours.bin"]
    aside = [p for p in tmp_path.iterdir() if p.name != "out"]
    assert len(aside) == 1 and (aside[0] / "notes.txt").read_text() == "the user's"

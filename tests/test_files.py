"""Tests for files.py: atomic writes never leave a partial file, replace links instead of
following them, and name the file and device when the disk is full."""

import errno
import os
import socket
import subprocess
import sys

import pytest
import torch
from conftest import ROOT

import files


def test_write_replaces_the_file_in_one_step(tmp_path):
    path = tmp_path / "metrics.json"
    files.write_text(path, "old\n")
    with pytest.raises(RuntimeError, match="boom"), files.atomic_write(path) as f:
        f.write("half of the new")
        raise RuntimeError("boom")
    assert path.read_text() == "old\n"  # the failed write left the old file as it was
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]  # and no temporary file
    files.write_text(path, "new\n")
    assert path.read_text() == "new\n" and (path.stat().st_mode & 0o777) == 0o644


def test_a_planted_link_is_replaced_not_followed(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("precious\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").symlink_to(outside)
    files.write_text(run / "metrics.json", "metrics\n")
    assert outside.read_text() == "precious\n"
    assert not (run / "metrics.json").is_symlink() and (run / "metrics.json").read_text() == "metrics\n"


def test_copy_and_torch_save(tmp_path):
    (tmp_path / "a").write_bytes(b"\x00\x01vocab")
    files.copy_file(tmp_path / "a", tmp_path / "b")
    assert (tmp_path / "b").read_bytes() == b"\x00\x01vocab"
    files.save_torch({"w": torch.arange(3)}, tmp_path / "c.pt")
    assert torch.equal(torch.load(tmp_path / "c.pt", weights_only=True)["w"], torch.arange(3))


def test_a_full_disk_names_the_file_and_removes_the_partial_one(tmp_path, monkeypatch):
    path = tmp_path / "best.pt"
    files.write_text(path, "previous checkpoint")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(files.WriteError, match=rf"no space left on \S+ writing {path}"):
        files.save_torch({"w": torch.zeros(3)}, path)
    assert path.read_text() == "previous checkpoint"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt"]


def test_check_keeps_a_bad_file_out(tmp_path):
    path = tmp_path / "vocab.txt"
    files.write_text(path, "old\n")

    def check(tmp):
        assert tmp != path and tmp.read_text() == "half\n"  # the complete temporary file, before the rename
        raise ValueError("too short")

    with pytest.raises(ValueError, match="too short"), files.atomic_write(path, check=check) as f:
        f.write("half\n")
    assert path.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["vocab.txt"]


class NotPlainData:
    """An object a checkpoint must never hold: unpickling a class can run its code."""


def test_load_torch_reads_back_and_names_every_failure_in_one_line(tmp_path):
    good = tmp_path / "good.pt"
    files.save_torch({"model": {"w": torch.ones(3)}, "step": 7}, good)
    assert files.load_torch(good, "checkpoint", keys=("model",))["step"] == 7
    blob = good.read_bytes()
    cases = {
        "truncated": (blob[: len(blob) // 2], "not a checkpoint: truncated or corrupt"),
        "empty": (b"", "empty file, not a checkpoint"),
        "garbage": (bytes(range(256)) * 4, "not a checkpoint"),
        "text": (b"hello world\n", "not a checkpoint: truncated or corrupt"),
    }
    for name, (content, _) in cases.items():
        (tmp_path / f"{name}.pt").write_bytes(content)
    torch.save({"model": NotPlainData()}, tmp_path / "objects.pt")
    cases["objects"] = (None, "holds Python objects other than tensors")
    cases["missing"] = (None, "no such file")
    files.save_torch({"weights": {}}, tmp_path / "wrong.pt")
    cases["wrong"] = (None, "it has no 'model' entry")
    for name, (_, message) in cases.items():
        with pytest.raises(files.ReadError) as e:
            files.load_torch(tmp_path / f"{name}.pt", "checkpoint", keys=("model",))
        text = str(e.value)
        assert text.startswith(str(tmp_path / f"{name}.pt")) and message in text, text
        assert "\n" not in text and "weights_only" not in text  # one line, and never torch's advice to unpickle
    with pytest.raises(files.ReadError, match="is a folder, not a checkpoint"):
        files.load_torch(tmp_path, "checkpoint")


def test_append_text_adds_to_the_end(tmp_path):
    path = tmp_path / "log.jsonl"
    files.append_text(path, "one\n")
    files.append_text(path, "two\nthree\n")
    assert path.read_text() == "one\ntwo\nthree\n"
    with pytest.raises(files.WriteError, match="no space left on /dev writing /dev/full"):
        files.append_text("/dev/full", "one\n")  # Linux's always-full device


def test_make_folder_and_remove_replace_a_planted_link_never_its_target(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious.txt").write_text("keep\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / "report").symlink_to(elsewhere)
    files.write_text(files.make_folder(run / "report") / "index.html", "page\n")
    assert not (run / "report").is_symlink() and (run / "report" / "index.html").read_text() == "page\n"
    assert sorted(p.name for p in elsewhere.iterdir()) == ["precious.txt"]
    (run / "predictions").symlink_to(elsewhere)
    files.remove(run / "predictions")
    files.remove(run / "report")
    assert sorted(p.name for p in run.iterdir()) == [] and (elsewhere / "precious.txt").read_text() == "keep\n"


HOLD = "import files, sys, time\nwith files.locked(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(120)\n"


def test_a_locked_folder_refuses_a_second_process_and_a_dead_holders_lock_is_taken_over(tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(files.LockError, match=rf"{run} is in use: process {holder.pid} on "), files.locked(run):
            pass
    finally:
        holder.kill()  # SIGKILL: no chance to remove its lock
        holder.wait()
    assert (run / files.LOCK).read_text().split()[0] == str(holder.pid)  # left behind: stale
    notes = []
    with files.locked(run, log=notes.append) as lock:
        assert lock.read_text().split()[0] == str(os.getpid())
        assert len(notes) == 1 and f"process {holder.pid}" in notes[0] and "no longer runs" in notes[0]
    assert sorted(p.name for p in run.iterdir()) == []  # released, and no temporary file left


def test_the_lock_is_released_on_an_error_and_names_a_foreign_file(tmp_path):
    with pytest.raises(RuntimeError, match="boom"), files.locked(tmp_path / "run"):
        raise RuntimeError("boom")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == []
    (tmp_path / "run" / files.LOCK).write_text("not a lock\n")
    with pytest.raises(files.LockError, match="not a lock"), files.locked(tmp_path / "run"):
        pass
    # a "pid" that str.isdigit takes but int() does not (superscript two), on this host
    (tmp_path / "run" / files.LOCK).write_text(f"\u00b2 {socket.gethostname()}\n")
    with pytest.raises(files.LockError, match="not a lock"), files.locked(tmp_path / "run"):
        pass
    (tmp_path / "file").write_text("")
    with pytest.raises(files.LockError, match=rf"{tmp_path / 'file'}: cannot make the folder"):
        with files.locked(tmp_path / "file"):
            pass


def test_a_file_system_without_hard_links_still_gets_one_holder(tmp_path, monkeypatch):
    def no_links(src, dst):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    with files.locked(tmp_path / "run") as lock:
        assert lock.read_text().split()[0] == str(os.getpid())
        with pytest.raises(files.LockError, match="is in use"), files.locked(tmp_path / "run"):
            pass
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == []


@pytest.mark.parametrize("mark", files.RUN_MARKS)
def test_a_path_inside_a_run_folder_is_refused_with_the_folder_and_its_mark_named(tmp_path, mark):
    run = tmp_path / "runs" / "all"
    run.mkdir(parents=True)
    files.write_text(run / mark, "4242 elsewhere\n" if mark == files.LOCK else "{}")  # (another host's lock)
    deep = run / "predictions" / "ens"  # any depth below the run, whether it exists yet or not
    assert files.in_a_run(deep, "--out") == (
        f"--out {deep} is inside the run {run}: choose a folder outside it (a run's folder: it holds {mark})"
    )
    # the run folder itself is the tool's own unless `itself` (synth.py label's --out is a run folder)
    assert files.in_a_run(run, "--out") is None
    assert files.in_a_run(run, "--results", itself=True).startswith(f"--results {run} is the run {run}: ")
    # beside the run, or in the folder holding the runs: no run's folder
    assert files.in_a_run(tmp_path / "runs" / "ens", "--out") is None
    assert files.in_a_run(tmp_path / "runs", "--out", itself=True) is None


def test_a_running_runs_lock_marks_its_folder_and_a_link_is_followed_to_where_it_writes(tmp_path):
    run = tmp_path / "run"
    with files.locked(run):  # a run still being written: no metrics.json nor checkpoint yet
        assert files.in_a_run(run / "x", "--out").endswith("(a run's folder: it holds .lock)")
    assert files.in_a_run(run / "x", "--out") is None
    (run / files.LOCK).write_text("4242\n")  # another program's lock file (pytest's holds its pid)
    assert files.in_a_run(run / "x", "--out") is None
    (run / "checkpoint.pt").write_bytes(b"")
    (tmp_path / "link").symlink_to(run)
    assert f"is inside the run {run}:" in files.in_a_run(tmp_path / "link" / "x", "--out")

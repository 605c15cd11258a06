"""The reading path of one plain optimizer step (issue 27's measure; a tool, not a test).

Every function of the project's top-level modules that runs while train.train_step takes five
steps of `train.py --task all` on the tiny fixture data (several steps, so every task's path is
seen) is found with sys.setprofile, and counted whole: its lines, and its lines of code (without
the docstring, comments and blank lines). Speed code is left aside, as the issue asks: AdamW runs
its one-parameter-at-a-time loop (foreach off), the encoder its plain encode (not encode_fast,
with padding removal), and the fast CPU dropout is not counted.

    python tests/reading_path.py [REPO]          # default: this checkout
"""

import ast
import contextlib
import inspect
import io
import os
import sys
import tempfile
import textwrap
from collections import defaultdict
from pathlib import Path

REPO = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent.parent).resolve()
sys.path[:0] = [str(REPO), str(REPO / "tests")]
os.chdir(REPO)

import torch  # noqa: E402
from conftest import TINY, make_course_data  # noqa: E402

import train  # noqa: E402

SPEED = {"minbert.py": {"dropout"}}


def plain_run(folder):
    make_course_data(folder / "data")
    flags = ["--task", "all", "--model", str(TINY), "--data-dir", str(folder / "data"), "--out", str(folder / "run")]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        run = train.setup(train.parse_args([*flags, "--epochs", "1", "--steps-per-epoch", "8"]))
    for group in run.optimizer.param_groups:
        group["foreach"] = False
    run.model.bert.fast = False
    run.model.train()
    return run


def traced_functions(run):
    """The code objects of the project's functions that run during steps 3-7 (2 steps warm up first)."""
    for step in range(3):
        train.train_step(run, 0, step)
    seen = {}

    def profile(frame, event, arg):
        code = frame.f_code
        if event == "call" and Path(code.co_filename).parent == REPO and not code.co_name.startswith("<"):
            seen.setdefault((code.co_filename, code.co_firstlineno), code)

    sys.setprofile(profile)
    for step in range(3, 8):
        train.train_step(run, 0, step)
    sys.setprofile(None)
    return [
        c for c in seen.values() if c.co_qualname.split(".<locals>")[0] not in SPEED.get(Path(c.co_filename).name, ())
    ]


def code_lines(source):
    """Lines that hold code: not blank, not a comment, not the function's docstring."""
    text = textwrap.dedent("".join(source))
    body = ast.parse(text).body[0].body
    first = body[0]
    doc = set()
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        doc = set(range(first.lineno, first.end_lineno + 1))
    lines = text.splitlines()
    return sum(
        1 for i, line in enumerate(lines, 1) if line.strip() and not line.strip().startswith("#") and i not in doc
    )


def main():
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        codes = traced_functions(plain_run(Path(tmp)))
    per_file = defaultdict(list)
    for code in codes:
        source = inspect.getsourcelines(code)[0]
        per_file[Path(code.co_filename).name].append((code.co_qualname, len(source), code_lines(source)))
    for name, fns in per_file.items():
        listing = ", ".join(f"{q} {n}" for q, n, _ in fns)
        lines, code = sum(f[1] for f in fns), sum(f[2] for f in fns)
        print(f"{name}: {len(fns)} functions, {lines} lines ({code} of code): {listing}")
    lines, code = sum(f[1] for v in per_file.values() for f in v), sum(f[2] for v in per_file.values() for f in v)
    print(f"total: {lines} lines ({code} of code) in {len(per_file)} files, {len(codes)} functions")


if __name__ == "__main__":
    main()

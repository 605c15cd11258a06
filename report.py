"""What a run learned, as pictures and tables: python report.py RUN_DIR [RUN_DIR ...]

One run folder (what train.py writes: metrics.json, predictions/) gives RUN_DIR/report/index.html,
a self-contained page (SVG inline, no JavaScript, nothing fetched), and the same content as
report.md with the SVG files beside it: the dev metrics, per-epoch curves, confusion matrices
with per-class precision / recall / F1, the similarity scatter with its least-squares line, and
the most confident mistakes with their sentences. These are the error analyses of the four
reports ("Tuning Up BERT" Figs 5-6 and Tables 7-9; "BERT and Beyond" Figs 3-4).

Several run folders give each run's report plus a comparison page (--out): one row per run with
its distinguishing flags, dev metrics, time and examples seen, and the runs' curves side by side
(a chart for overall and one per task).

    python report.py runs/main
    python report.py runs/a runs/b runs/c --out runs/compare
    python report.py /elsewhere/run --data-dir data     # a run made with the course files elsewhere

The pages are built by pages.py (train.py calls pages.write_report when a run ends); the numbers
come from analysis.py and the charts from svg.py.
"""

import argparse
import os
import sys
from pathlib import Path

import analysis
import data
import files
import pages
import predictions


def default_out(run_dirs):
    """Beside the runs: the folder that holds them all, then comparison/."""
    return Path(os.path.commonpath([Path(d).resolve() for d in run_dirs])) / "comparison"


def comparison_problem(run_dirs, out):
    """Why the comparison of `run_dirs` must not go to `out` (None when it may): a run given twice,
    or an `out` in a run folder, where it could replace the run's own report/ (written just before);
    nor in any other run's folder."""
    resolved = [Path(d).resolve() for d in run_dirs]
    for d, r in zip(run_dirs, resolved):
        if resolved.count(r) > 1:
            return f"{d} is given twice"
    dest = Path(out).resolve()
    for d, r in zip(run_dirs, resolved):
        if dest == r or r in dest.parents:
            return f"--out {out} is inside the run {d}: choose a folder outside the runs compared"
    return files.in_a_run(out, "--out")  # nor in a run not compared


def get_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders (metrics.json and predictions/ in each)")
    p.add_argument(
        "--out",
        default=None,
        help="where the comparison page of several runs goes (default: comparison/ in the folder holding the runs)",
    )
    p.add_argument(
        "--data-dir",
        default=None,
        help="folder with the course dev files, replacing those each run's metrics.json records (train.py, "
        "synth.py label and ensemble.py record them): for runs made elsewhere",
    )
    p.add_argument("--mistakes", type=int, default=10, help="how many confident mistakes to list per task")
    return p


def main(argv=None):
    args = get_parser().parse_args(argv)
    if args.mistakes < 0:
        sys.exit("error: --mistakes must be 0 or more")
    if args.out is not None and len(args.runs) == 1:
        sys.exit("error: --out is for the comparison of several runs; one run's report goes to RUN_DIR/report/")
    try:
        if len(args.runs) == 1:
            run = analysis.load_results(args.runs[0], args.data_dir)
            for sentence in run.absent:
                print(f"note: {sentence}", file=sys.stderr)
            index = pages.write_run(run, args.mistakes)
        else:
            out = Path(args.out) if args.out else default_out(args.runs)
            if problem := comparison_problem(args.runs, out):
                sys.exit(f"error: {problem}")
            index = pages.write_comparison(args.runs, out, args.data_dir, args.mistakes)
    except (analysis.RunError, data.DataError, predictions.PredictionFileError, OSError) as e:
        sys.exit(f"error: {e}")
    print(f"wrote {index}")
    return index


if __name__ == "__main__":
    main()

"""The report pages: one run's figures and tables, or several runs side by side.

A page is written twice with the same content: index.html, self-contained (the SVG inline, no
JavaScript, nothing fetched), and report.md with the SVG files beside it. Both are built from one
list of sections, each a heading and its blocks: a paragraph (a string), a `Table` or a `Figure`.

    pages.write_report("runs/main")                                # -> runs/main/report/index.html
    pages.write_comparison(["runs/a", "runs/b"], "runs/comparison")  # -> runs/comparison/index.html

report.py is the command line around these two; train.py calls write_report when a run ends.
The numbers come from analysis.py, the charts from svg.py, the task table from tasks.py.
"""

import html
import json
import os
import re
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import analysis
import files
import svg
from tasks import TASK_NAMES, TASKS, overall, plain_mean, score


@dataclass
class Table:
    header: list
    rows: list  # lists of cells: strings, or Links
    best: set = field(default_factory=set)  # (row, column) of the cells to mark as the best of their column


@dataclass
class Figure:
    name: str  # the SVG's file name beside report.md
    svg: str
    caption: str


@dataclass
class Link:
    text: str
    href: str


def fmt(value, digits=4):
    return "–" if value is None else f"{value:.{digits}f}"


def metric_name(task):
    return "Pearson r" if TASKS[task].metric == "pearson" else "accuracy"


# ----------------------------------------------------------------------------
# one run


def run_sections(run, mistakes=10):
    """The sections of one run's page, top to bottom."""
    sections = [
        ("Dev metrics", metric_blocks(run)),
        *([("Ensemble", ensemble_blocks(run.ensemble))] if isinstance(run.ensemble, dict) else []),
        ("Per-epoch curves", curve_blocks(run)),
        ("Confusion matrices and per-class scores", confusion_blocks(run)),
        ("Similarity: predicted vs gold", scatter_blocks(run)),
        ("Most confident mistakes", mistake_blocks(run, mistakes)),
    ]
    if run.absent:
        sections.append(("Not in this report", ["; ".join(run.absent) + "."]))
    return sections + [("Configuration", config_blocks(run))]


def only_note(dev, tasks=TASK_NAMES):
    """' (sst only)' after a mean of `dev`'s scores when it covers fewer of `tasks` than all: a mean
    over fewer tasks is another quantity, so say which; "" otherwise."""
    return f" ({', '.join(dev)} only)" if dev and len(dev) < len(tasks) else ""


def metric_blocks(run):
    dev = {t: v for t, v in run.summary.get("dev", {}).items() if t in TASKS}
    rows = []
    for task in TASK_NAMES:
        td = run.tasks.get(task)
        again = score(task, td.pred, td.gold) if td is not None and td.examples is not None else None
        n = str(len(td.ids)) if td is not None else "–"
        rows.append([TASKS[task].title, metric_name(task), fmt(dev.get(task)), fmt(again), n])
    only = only_note(dev)  # a single-task run's
    rows.append([f"course overall: mean(SST, QQP, (r + 1) / 2){only}", "", fmt(overall(dev) if dev else None), "", ""])
    rows.append([f"plain mean of the three{only}", "", fmt(plain_mean(dev) if dev else None), "", ""])
    header = ["task", "metric", f"dev ({run.summary_file})", "recomputed from predictions/", "examples"]
    facts = []
    if "best_epoch" in run.summary:
        facts.append(f"Best epoch {run.summary['best_epoch']} of {len(run.summary.get('epochs', []))}")
    if "wall_time_s" in run.summary:
        facts.append(f"wall time {run.summary['wall_time_s']:.0f} s")
    seen = run.summary.get("examples_seen")
    if seen:
        facts.append(f"examples seen {sum(seen.values())} ({', '.join(f'{t} {n}' for t, n in seen.items())})")
    return [" ".join([f"Run folder {run.folder}.", "; ".join(facts) + "." * bool(facts)]).strip(), Table(header, rows)]


def ensemble_blocks(ensemble):
    """ensemble.py's choice per task: how it chose, the members (a run counted twice weighs twice), the
    ensemble's dev score and the best single member's."""
    rows = []
    tasks = ensemble.get("tasks")
    for task, info in tasks.items() if isinstance(tasks, dict) else []:
        if not isinstance(info, dict):
            continue
        members = ", ".join(f"{m.get('run')} ×{m.get('count', 1)}" for m in info.get("members", []))
        singles = [v for v in (info.get("singles") or {}).values() if isinstance(v, int | float)]
        rows.append([task, str(info.get("method", "")), members, fmt(info.get("dev")), fmt(max(singles, default=None))])
    blocks = [Table(["task", "chosen by", "members", "ensemble dev", "best single run dev"], rows)]
    note = str(ensemble.get("note") or "")
    return blocks + ([note[:1].upper() + note[1:] + "."] if note else [])


def epoch_series(epochs, key):
    """{task: [(epoch, value), ...]} of a per-task entry of the history (dev, train_loss, train_acc)."""
    series = {}
    for e in epochs:
        for task, value in (e.get(key) or {}).items():
            series.setdefault(task, []).append((e["epoch"], value))
    return series


def curve_blocks(run):
    epochs = run.summary.get("epochs") or []
    if not epochs:
        return [f"No per-epoch history: {run.summary_file} has no epochs."]
    dev = epoch_series(epochs, "dev")
    dev["overall"] = [(e["epoch"], e["overall"]) for e in epochs if "overall" in e]
    dev["plain mean"] = [(e["epoch"], e["plain_mean"]) for e in epochs if "plain_mean" in e]
    subset = run.config.get("eval_subset")
    blocks = [
        Figure(
            "curve-dev.svg",
            svg.line_chart({k: v for k, v in dev.items() if v}, "dev metric per epoch", "epoch", "accuracy or r"),
            "Dev accuracy (sst, para), Pearson r (sts) and the overall score after each epoch"
            + (f", on a fixed subset of at most {subset} examples per task (--eval-subset)." if subset else "."),
        )
    ]
    for key, title, axis in (("train_loss", "training loss", "loss"), ("train_acc", "training accuracy", "accuracy")):
        series = epoch_series(epochs, key)
        if series:
            chart = svg.line_chart(series, f"{title} per epoch", "epoch", axis)
            blocks.append(Figure(f"curve-{key.replace('_', '-')}.svg", chart, f"Mean {title} per task in each epoch."))
        else:
            blocks.append(f"No {title} recorded ({key} is not in the per-epoch history).")
    return blocks


def confusion_blocks(run):
    blocks = []
    for task in [t for t in TASK_NAMES if TASKS[t].kind != "regression"]:
        td = run.tasks.get(task)
        if td is None or td.examples is None:
            continue
        k = analysis.confusion_size(td)
        counts = analysis.confusion_matrix(td.gold, td.pred, k)
        labels = [str(c) for c in range(k)]
        chart = svg.heatmap(counts, labels, f"{TASKS[task].title}: confusion matrix")
        names = TASKS[task].class_names
        legend = ", ".join(f"{c} = {names[c]}" for c in range(min(k, len(names))))
        caption = (
            f"Rows: gold class; columns: predicted ({legend}). Colour and upper figure: the share of the gold "
            f"row; in brackets the count. {counts.sum()} examples, accuracy {fmt(score(task, td.pred, td.gold))}."
        )
        scores = analysis.per_class(counts)
        rows = [
            [str(c), names[c] if c < len(names) else "", fmt(p), fmt(r), fmt(f), str(s)]
            for c, (p, r, f, s) in enumerate(scores)
        ]
        rows.append(["macro mean", "", *map(fmt, analysis.macro_mean(scores)), str(counts.sum())])
        table = Table(["class", "meaning", "precision", "recall", "F1", "support"], rows)
        blocks += [Figure(f"{task}-confusion.svg", chart, caption), table]
    return blocks or ["No classification task with dev predictions and gold labels."]


def scatter_blocks(run):
    regression = [run.tasks[t] for t in TASK_NAMES if TASKS[t].kind == "regression" and t in run.tasks]
    td = regression[0] if regression else None
    if td is None or td.examples is None:
        return ["No similarity predictions with gold scores."]
    slope, intercept = analysis.least_squares(td.gold, td.pred)
    r = score(td.task, td.pred, td.gold)
    equation = f"predicted = {slope:.3f} × gold {'+' if intercept >= 0 else '−'} {abs(intercept):.3f}"
    chart = svg.scatter(
        td.gold,
        td.pred,
        "similarity: predicted vs gold",
        "gold similarity",
        "predicted similarity",
        line=(slope, intercept),
        line_label="least squares",
    )
    caption = f"{len(td.ids)} dev pairs. Least-squares line: {equation}; Pearson r = {r:.4f}."
    return [Figure("sts-scatter.svg", chart, caption)]


def mistake_blocks(run, n):
    blocks = []
    for task, td in run.tasks.items():
        if td.examples is None:
            continue
        picked = analysis.confident_mistakes(td, n)
        conf = analysis.confidence(td)
        texts = ["sentence"] if not TASKS[task].is_pair else ["sentence 1", "sentence 2"]
        if TASKS[task].kind == "regression":
            what, header = "largest errors |predicted − gold|", ["|error|"]
        elif td.raw.ndim == 2:
            what, header = "wrong predictions with the highest probability", ["P(predicted)", "P(gold)"]
        else:
            what, header = "wrong predictions with the highest probability", ["P(predicted)"]
        rows = []
        for i in picked:
            ex = td.examples[i]
            cells = [ex.id, ex.text_a] + ([ex.text_b] if ex.text_b is not None else [])
            digits = 2 if TASKS[task].kind == "regression" else 0  # a similarity, or a class id
            cells += [fmt(td.gold[i], digits), fmt(td.pred[i], digits), fmt(conf[i], 3)]
            if td.raw.ndim == 2:
                cells.append(fmt(td.raw[i, int(td.gold[i])], 3))
            rows.append(cells)
        blocks.append(f"{TASKS[task].title}: the {len(rows)} {what}.")
        blocks.append(Table(["id", *texts, "gold", "predicted", *header], rows))
    return blocks or ["No dev predictions with sentences (dev files not found)."]


def config_blocks(run):
    if run.config:
        return [
            "Every flag of the run, as the tool that made it (train.py, ensemble.py, ...) recorded it.",
            side_by_side(run.config, "flag"),
        ]
    rest = {k: v for k, v in run.summary.items() if k not in ("dev", "epochs")}
    if not rest:
        return [f"{run.summary_file} has no config and no other entries."]
    return [f"{run.summary_file} has no config; its other entries:", side_by_side(rest, "key")]


def side_by_side(entries, name, pairs=3):
    """A long key -> value list as a table of `pairs` key / value column pairs, so it fits one screen."""
    items = [(k, json.dumps(v)) for k, v in entries.items()]
    height = -(-len(items) // pairs)  # rows: the number of items divided by pairs, rounded up
    columns = [items[i : i + height] for i in range(0, len(items), height)]
    rows = [[cell for column in columns if r < len(column) for cell in column[r]] for r in range(height)]
    rows = [row + [""] * (2 * len(columns) - len(row)) for row in rows]
    return Table([name, "value"] * len(columns), rows)


# ----------------------------------------------------------------------------
# several runs


def distinguishing(configs):
    """The config keys whose values differ between the runs (a key missing from one run differs too);
    the output folder differs always and is left out."""
    keys = [k for c in configs for k in c]
    keys = list(dict.fromkeys(keys))
    return [k for k in keys if k != "out" and len({json.dumps(c.get(k)) for c in configs}) > 1]


def comparison_sections(runs, labels, links):
    keys = distinguishing([r.config for r in runs])
    columns = [*TASK_NAMES, "overall", "plain mean"]
    header = ["run", "distinguishing flags", *columns, "wall time (s)", "examples seen"]
    devs = [{t: v for t, v in run.summary.get("dev", {}).items() if t in TASKS} for run in runs]
    every = [t for t in TASK_NAMES if any(t in dev for dev in devs)]  # the tasks of all the runs together
    whole = [i for i, dev in enumerate(devs) if all(t in dev for t in every)]  # runs with every one of them
    rows, values = [], []
    for run, label, link, dev in zip(runs, labels, links, devs):
        numbers = [dev.get(t) for t in TASK_NAMES] + [overall(dev) if dev else None, plain_mean(dev) if dev else None]
        numbers.append(run.summary.get("wall_time_s"))
        flags = " ".join(f"{k}={json.dumps(run.config.get(k))}" for k in keys) or "–"
        seen = run.summary.get("examples_seen")
        means = [fmt(v) for v in numbers[len(TASK_NAMES) : -1]]
        means = [m + only_note(dev, every) for m in means]
        cells = [Link(label, link), flags] + [fmt(v) for v in numbers[: len(TASK_NAMES)]] + means
        rows.append(cells + [fmt(numbers[-1], 1), str(sum(seen.values())) if seen else "–"])
        values.append(numbers)
    best = set()
    for j in range(len(columns) + 1):
        # a task's column compares every run that has the task; the means and the wall time only
        # the runs with every task, like with like (an SST-only run is not best "overall")
        ranked = range(len(runs)) if j < len(TASK_NAMES) else whole
        present = [(values[i][j], i) for i in ranked if values[i][j] is not None]
        if present:  # the highest metric, the shortest wall time
            target = min(present)[0] if j == len(columns) else max(present)[0]
            best |= {(i, 2 + j) for v, i in present if v == target}
    intro = (
        f"{len(runs)} runs. Distinguishing flags: the configuration entries whose values differ between the runs. "
        "Dev metrics are on the full dev sets; the best of each column is marked in bold. Overall, plain mean and "
        f"wall time are compared only among the runs with every task ({', '.join(every)}): a mean over fewer "
        "tasks is another quantity, and a run of fewer tasks is quicker."
    )
    return [("Runs", [intro, Table(header, rows, best)]), ("Per-epoch curves", comparison_curves(runs, labels))]


def comparison_curves(runs, labels):
    """The comparison's figures: dev overall and each task's metric after every epoch, a line per run."""
    subsets = any((run.config or {}).get("eval_subset") for run in runs)  # 0 or absent: the full dev sets
    rows = "on each run's --eval-subset rows, where it set one" if subsets else "on the full dev sets"
    curves = []
    for key, title in (("overall", "overall"), *((t, TASKS[t].title) for t in TASK_NAMES)):
        series = {}
        for run, label in zip(runs, labels):
            for e in run.summary.get("epochs") or []:
                value = e.get("overall") if key == "overall" else (e.get("dev") or {}).get(key)
                if value is not None:
                    series.setdefault(label, []).append((e["epoch"], value))
        if series:
            axis = "overall" if key == "overall" else metric_name(key)
            chart = svg.line_chart(series, f"dev {title} per epoch", "epoch", axis)
            curves.append(
                Figure(
                    f"curve-{key}.svg",
                    chart,
                    f"Dev {title} after each epoch ({rows}), one line per run.",
                )
            )
    missing = [label for run, label in zip(runs, labels) if not run.summary.get("epochs")]
    if missing:
        curves.append(f"No per-epoch history for: {', '.join(missing)}.")
    return curves


# ----------------------------------------------------------------------------
# writing the page: HTML and Markdown from the same sections

STYLE = """
body { font-family: Helvetica, Arial, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
td.best { font-weight: bold; background: #e6f4ea; }
figure { margin: 1em 0 2em; }
figcaption { font-size: 14px; color: #444; max-width: 750px; }
"""


def cell_html(cell):
    if isinstance(cell, Link):
        return f'<a href="{html.escape(cell.href)}">{html.escape(cell.text)}</a>'
    return html.escape(str(cell))


def td_html(cell, best):
    return f'<td class="best">{cell_html(cell)}</td>' if best else f"<td>{cell_html(cell)}</td>"


def to_html(title, sections):
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">']
    out += [f"<title>{html.escape(title)}</title>", f"<style>{STYLE}</style></head><body>"]
    out.append(f"<h1>{html.escape(title)}</h1>")
    for heading, blocks in sections:
        out.append(f"<h2>{html.escape(heading)}</h2>")
        for block in blocks:
            if isinstance(block, Table):
                out.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in block.header) + "</tr>")
                for i, row in enumerate(block.rows):
                    tds = [td_html(c, (i, j) in block.best) for j, c in enumerate(row)]
                    out.append("<tr>" + "".join(tds) + "</tr>")
                out.append("</table>")
            elif isinstance(block, Figure):
                svg_body = block.svg[block.svg.index("<svg") :]  # inline: the XML document is the element
                out.append(f"<figure>{svg_body}<figcaption>{html.escape(block.caption)}</figcaption></figure>")
            else:
                out.append(f"<p>{html.escape(block)}</p>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def md_escape(text):
    """Text from the data (sentences, folder names, flags, notes) as Markdown that shows it as is, as
    html.escape does for the HTML page. Markdown passes HTML through, so that is escaped first; then a
    backslash goes before each character that starts emphasis, code, a link or image (`![x](url)` would
    make a viewer fetch url), strikethrough or a table cell, and before what would start a block at the
    start of a paragraph (a heading, list, rule; ">" is already &gt;). One line: a line break would end
    a table row."""
    text = html.escape(str(text), quote=False).replace("\n", " ").replace("\r", " ")
    text = re.sub(r"([\\`*_\[\]|~!])", r"\\\1", text)
    text = re.sub(r"^(\s*)([#+=-])(?=[\s#+=-]|$)", r"\1\\\2", text)  # "# h", "- item", "---", "=="
    return re.sub(r"^(\s*\d+)([.)])(?=\s|$)", r"\1\\\2", text)  # "1. item"


def cell_md(cell):
    if isinstance(cell, Link):  # its href was percent-encoded when the link was made
        return f"[{md_escape(cell.text)}]({cell.href})"
    return md_escape(cell)


def to_markdown(title, sections):
    out = [f"# {md_escape(title)}", ""]
    for heading, blocks in sections:
        out += [f"## {md_escape(heading)}", ""]
        for block in blocks:
            if isinstance(block, Table):
                out.append("| " + " | ".join(map(md_escape, block.header)) + " |")
                out.append("|" + "---|" * len(block.header))
                for i, row in enumerate(block.rows):
                    cells = [f"**{cell_md(c)}**" if (i, j) in block.best else cell_md(c) for j, c in enumerate(row)]
                    out.append("| " + " | ".join(cells) + " |")
            elif isinstance(block, Figure):
                out += [f"![{md_escape(block.caption)}]({block.name})", "", md_escape(block.caption)]
            else:
                out.append(cell_md(block))
            out.append("")
    return "\n".join(out)


def write_page(folder, title, sections):
    """index.html, report.md and the SVG files in `folder`; returns the path of index.html."""
    folder = files.make_folder(folder)  # a planted link (report -> /elsewhere) is replaced, not followed
    return write_page_files(folder, title, sections)


def write_page_files(folder, title, sections, html_name="index.html", md_name="report.md"):
    """The SVG files (a figure's name may start with a subfolder: charts/x.svg), the Markdown and the
    HTML of one page in `folder`, as it is (reproduce.py's results folder may well be a link to a
    bigger disk); returns the path of the HTML page."""
    folder = Path(folder)
    for _, blocks in sections:
        for block in blocks:
            if isinstance(block, Figure):
                (folder / block.name).parent.mkdir(parents=True, exist_ok=True)
                files.write_text(folder / block.name, block.svg)
    files.write_text(folder / md_name, to_markdown(title, sections))
    files.write_text(folder / html_name, to_html(title, sections))
    return folder / html_name


def write_report(run_dir, data_dir=None, mistakes=10):
    """Write RUN_DIR/report/ (index.html, report.md, the SVG files); returns the path of index.html.
    Raises analysis.RunError (or data.DataError, predictions.PredictionFileError) naming what is wrong."""
    return write_run(analysis.load_results(run_dir, data_dir), mistakes)


def write_run(run, mistakes=10):
    return write_page(run.folder / "report", f"Run report: {run.folder.name}", run_sections(run, mistakes))


def write_comparison(run_dirs, out, data_dir=None, mistakes=10):
    """Each run's own report, then the comparison page in `out`; returns the path of its index.html."""
    runs, links = [], []
    out = Path(out)
    for run_dir in run_dirs:
        runs.append(analysis.load_results(run_dir, data_dir))
        index = write_run(runs[-1], mistakes)
        # a URL, not a path: a folder named `x)](javascript:...)` or `<b>` must not reach the page raw
        links.append(urllib.parse.quote(Path(os.path.relpath(index, out)).as_posix()))
    names = [Path(d).name for d in run_dirs]  # the folder names, unless two runs share one
    labels = names if len(set(names)) == len(names) else [str(d) for d in run_dirs]
    return write_page(out, f"Comparison of {len(runs)} runs", comparison_sections(runs, labels, links))

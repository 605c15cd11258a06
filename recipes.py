"""Recipes: a run's flags kept as a small TOML file (recipes/*.toml), read with the standard library.

nanoGPT keeps each of its runs as a small config file; here a report's configuration is data too:

    python train.py --config recipes/bert-and-beyond.toml               # the report's final model
    python train.py --config recipes/cpu/bert-and-beyond.toml --seed 1  # command-line flags win
    python mlm.py --config recipes/cpu/sustech-mlm.toml                 # mlm.py reads them the same way

A recipe's keys are the script's flags exactly as written on the command line, without the two
leading dashes, one `key = value` a line:

    sst-loss = "dual"            # --sst-loss dual
    smart = 0.45                 # --smart 0.45
    pcgrad = true                # --pcgrad (an on/off flag: true or false)
    adam-betas = [0.9, 0.999]    # --adam-betas 0.9 0.999

The file's values become the parser's defaults, so a flag on the command line overrides the file
(a repeatable flag, mlm.py's --text, adds to the file's list). Every key and value is checked before
any work starts: a key that is not a flag, or a value of the wrong type or outside the flag's
choices, is one line naming the file and its line.

The ablation tables reproduce.py reruns are files too (recipes/ablations/NN-name.toml, read by
read_ablations below): each [[row]] names its report's CPU recipe (base = "bert-and-beyond" is
recipes/cpu/bert-and-beyond.toml) and the keys it sets over it, with the report's figures beside it:

    [[row]]
    label = "dual"
    base = "bert-and-beyond"
    set = { sst-loss = "dual", stagger-epochs = 2, epochs = 4 }
    refs = [{ source = "BERT and Beyond T3", sst = 0.540, para = 0.888, sts = 0.885, overall = 0.790 }]
"""

import argparse
import hashlib
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

# Flags a recipe cannot hold: a recipe does not name another recipe, nor continue a run.
NOT_IN_RECIPE = {"config", "resume", "help"}


class RecipeError(Exception):
    """A recipe that cannot be used; the message starts with "FILE:LINE:"."""


def read_toml(path):
    """The file's table of keys and its text; a TOML syntax error names the file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise RecipeError(f"{path}: cannot read it ({e})") from None
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as e:
        found = re.search(r"\(at line (\d+), column (\d+)\)", str(e))
        where = f"{found[1]}: {str(e)[: found.start()].strip()} (column {found[2]})" if found else f" {e}"
        raise RecipeError(f"{path}:{where}") from None


def line_of(text, key, after=0):
    """The first line past line `after` on which `key` is set (in a `key = value` line or an inline
    { key = value }) or its [table] opens (1-based), for messages; 0 if not found."""
    pattern = re.compile(rf"""(^|[{{,])\s*(\[+\s*)?["']?{re.escape(key)}["']?\s*(=|\])""")
    lines = text.splitlines()
    return next((i for i, line in enumerate(lines, 1) if i > after and pattern.search(line)), 0)


def flag_actions(parser):
    """{recipe key: argparse action} for every long flag of `parser` ("sst-loss" for --sst-loss).
    An on/off pair (--task-text / --no-task-text) is one key: task-text = true or false."""
    found = {}
    for action in parser._actions:
        if action.dest in NOT_IN_RECIPE:
            continue
        for option in action.option_strings:
            negative = isinstance(action, argparse.BooleanOptionalAction) and option.startswith("--no-")
            if option.startswith("--") and not negative:
                found[option[2:]] = action
    return found


def check_value(action, value):
    """The value argparse would have made of the flag, or a ValueError saying what was expected."""
    if action.nargs == 0:  # an on/off flag (store_true)
        if not isinstance(value, bool):
            raise ValueError("expected true or false")
        return value
    if isinstance(action.nargs, int) or isinstance(action, argparse._AppendAction):  # several values
        count = action.nargs if isinstance(action.nargs, int) else None
        if not isinstance(value, list) or (count is not None and len(value) != count):
            raise ValueError(f"expected a list of {count or 'one or more'} values")
        return [check_one(action, v) for v in value]
    return check_one(action, value)


def check_one(action, value):
    if isinstance(value, (dict, list, bool)):
        raise ValueError(f"expected {type_name(action)}")
    if action.type is int and not isinstance(value, int):
        raise ValueError("expected an integer")
    if action.type is float and not isinstance(value, (int, float)):
        raise ValueError("expected a number")
    if action.type in (None, str) and not isinstance(value, str):
        raise ValueError('expected a string (in quotes: "...")')
    value = action.type(value) if action.type else value
    if action.choices is not None and value not in action.choices:
        raise ValueError(f"choose from {', '.join(map(str, action.choices))}")
    return value


def type_name(action):
    return {int: "an integer", float: "a number"}.get(action.type, "a string")


def flag_values(parser, table, path, text=""):
    """{argparse dest: value} of a recipe's table, every key and value checked against `parser`."""
    actions, values = flag_actions(parser), {}
    for key, value in table.items():
        where = f"{path}:{line_of(text, key)}"
        if isinstance(value, dict):
            raise RecipeError(f"{where}: [{key}]: a recipe is flat, `flag = value` lines only")
        if key not in actions:
            hint = f" (write flags as on the command line: {key.replace('_', '-')})" if "_" in key else ""
            raise RecipeError(f"{where}: {key} is not a flag of this script{hint}")
        try:
            values[actions[key].dest] = check_value(actions[key], value)
        except ValueError as e:
            raise RecipeError(f"{where}: {key} = {value!r}: {e}") from None
    return values


def apply(parser, argv):
    """--config FILE in `argv`: the file's flags become `parser`'s defaults (so the command line
    still overrides them). Returns what metrics.json records of it (file, sha256, text), or None."""
    probe = argparse.ArgumentParser(add_help=False)
    probe.add_argument("--config", default=None)
    path = probe.parse_known_args(argv)[0].config
    if path is None:
        return None
    table, text = read_toml(path)
    parser.set_defaults(**flag_values(parser, table, path, text))
    return {"file": str(path), "sha256": hashlib.sha256(text.encode()).hexdigest(), "text": text}


def parse_args(parser, argv):
    """`parser.parse_args(argv)` after --config FILE (apply above), with args.recipe set to what
    metrics.json records of the file; a bad recipe is a one-line exit. train.py and mlm.py use this."""
    try:
        recipe = apply(parser, argv)
    except RecipeError as e:
        sys.exit(f"error: {e}")
    args = parser.parse_args(argv)
    args.recipe = recipe
    return args


def add_config_flag(parser):
    parser.add_argument(
        "--config",
        default=None,
        metavar="FILE.toml",
        help="a recipe (recipes/*.toml): its keys are this script's flags; flags given here override it",
    )


# ----------------------------------------------------------------------------
# ablation tables: recipes/ablations/NN-name.toml, read by reproduce.py

CPU_RECIPES = Path(__file__).resolve().parent / "recipes" / "cpu"
ABLATIONS = Path(__file__).resolve().parent / "recipes" / "ablations"


@dataclass(frozen=True)
class Ref:
    """A report's dev figures for one configuration; None where the report gives none. `kind` says
    which overall the report printed: the course formula or the plain mean (BERT++, SUSTech)."""

    source: str  # "BERT and Beyond T6": the report and its table
    sst: float | None = None
    para: float | None = None
    sts: float | None = None
    overall: float | None = None
    kind: str = "course"


@dataclass(frozen=True)
class Row:
    """One configuration of a table: a report's CPU recipe (recipes/cpu/<base>.toml) and the keys set
    over it, in train.py's flag names."""

    label: str
    base: str
    settings: tuple  # ((key, value), ...): the base recipe's keys, then the row's `set` over them
    changed: tuple  # the keys whose value differs from the base recipe's: what the row varies
    refs: tuple = ()
    quick: bool = False  # one of the rows `reproduce.py --quick` runs
    mlm: bool = False  # trained from reproduce.py's MLM encoder
    synth: str = ""  # "needed": runs only with --synth FILE; "if-given": uses it when given
    tasks: tuple = ()  # one single-task run per task; the row shows each task's own run
    epochs: int | None = None  # the row's own epochs (the budget's batches split over them)
    rank: bool = True  # ranked with the table's other rows of its setup


@dataclass(frozen=True)
class Ablation:
    name: str  # the file's name without its number: for --only
    title: str
    rows: tuple
    metric: tuple = ("overall",)  # columns (averaged) that rank the rows, ours and the report's
    setup: str = ""  # the table's setup, and what of the report's cannot be had here

    @property
    def quick(self):
        return any(r.quick for r in self.rows)


TABLE_KEYS = {"title": str, "metric": list, "setup": str, "row": list}
ROW_KEYS = {"label": str, "base": str, "set": dict, "refs": list, "quick": bool, "mlm": bool, "synth": str}
ROW_KEYS.update({"tasks": list, "rank": bool})
REF_KEYS = {"source": str, "sst": float, "para": float, "sts": float, "overall": float, "kind": str}


def check_keys(table, allowed, path, text, where="", after=0):
    for key, value in table.items():
        kind = allowed.get(key)
        if kind is None:
            raise RecipeError(f"{path}:{line_of(text, key, after)}: {where}{key} is not one of {', '.join(allowed)}")
        if not isinstance(value, kind) and not (kind is float and isinstance(value, int)):
            line = line_of(text, key, after)
            raise RecipeError(f"{path}:{line}: {where}{key} = {value!r}: expected a {kind.__name__}")


def read_row(row, path, text, i):
    """One [[row]] of an ablation file, its base recipe read and the row's keys set over it."""
    where = f"row {i + 1}: "
    start = [n for n, line in enumerate(text.splitlines(), 1) if line.strip() == "[[row]]"][i]  # its line
    check_keys(row, ROW_KEYS, path, text, where, start)
    for key in ("label", "base"):
        if key not in row:
            raise RecipeError(f"{path}:{start}: {where}has no {key}")
    recipe = CPU_RECIPES / f"{row['base']}.toml"
    if not recipe.is_file():
        raise RecipeError(f"{path}:{line_of(text, 'base', start)}: {where}base = {row['base']!r}: no {recipe}")
    base, _ = read_toml(recipe)
    over = row.get("set", {})
    settings = {k: v for k, v in base.items() if k != "out"} | over
    changed = tuple(sorted(k for k, v in over.items() if base.get(k) != v))
    refs = []
    for ref in row.get("refs", []):
        check_keys(ref, REF_KEYS, path, text, where + "refs: ", start)
        refs.append(Ref(**ref))
    if row.get("synth", "") not in ("", "needed", "if-given"):
        raise RecipeError(f'{path}:{line_of(text, "synth", start)}: {where}synth is "needed" or "if-given"')
    flags = {k: row[k] for k in ("quick", "mlm", "synth", "rank") if k in row}
    flags |= {"tasks": tuple(row.get("tasks", ())), "epochs": over.get("epochs")}
    return Row(row["label"], row["base"], tuple(settings.items()), changed, tuple(refs), **flags)


def read_ablation(path):
    table, text = read_toml(path)
    check_keys(table, TABLE_KEYS, path, text)
    rows = tuple(read_row(r, path, text, i) for i, r in enumerate(table.get("row", [])))
    if not rows or "title" not in table:
        raise RecipeError(f"{path}: an ablation needs a title and at least one [[row]]")
    name = path.stem.split("-", 1)[1] if path.stem[:2].isdigit() else path.stem
    return Ablation(name, table["title"], rows, tuple(table.get("metric", ["overall"])), table.get("setup", ""))


def read_ablations(folder=ABLATIONS):
    """Every ablation table, in the order of the files' numbers."""
    return tuple(read_ablation(p) for p in sorted(Path(folder).glob("*.toml")))

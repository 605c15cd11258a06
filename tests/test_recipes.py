"""recipes/*.toml: every recipe trains (2 steps, the tiny model, toy data) through `--config`, its
keys land in metrics.json as resolved flags, the command line overrides the file, main.toml is
today's defaults, and a bad recipe is one line naming its file and line."""

import hashlib
import json
import tomllib

import pytest
from conftest import DEVICE, ROOT, TINY

import data
import mlm
import recipes
import reproduce
import train
from tasks import TASKS

RECIPES = ROOT / "recipes"
MLM_RECIPES = sorted(p for p in RECIPES.rglob("*-mlm.toml") if "ablations" not in p.parts)
TRAIN_RECIPES = sorted(p for p in RECIPES.rglob("*.toml") if p not in MLM_RECIPES and "ablations" not in p.parts)
# The flags a test run always sets over a recipe: the tiny model, the toy data, two steps, the CPU.
TINY_RUN = ["--model", str(TINY), "--device", DEVICE.type, "--epochs", "1", "--log-every", "1"]


def name(path):
    return str(path.relative_to(RECIPES))


def synth_file(tmp_path, data_dir):
    """A synth.py file of paraphrases of the first two toy training sentences, with their labels."""
    path = tmp_path / "synth.jsonl"
    sources = data.read_examples(data_dir / TASKS["sst"].files["train"], "sst")[:2]
    rows = [
        {"id": f"{ex.id}-syn0", "source_id": ex.id, "label": ex.label, "text": "a fine film .", "model": "t"}
        for ex in sources
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("path", TRAIN_RECIPES, ids=name)
def test_every_recipe_trains_two_steps_and_metrics_record_it(path, data_dir, tmp_path):
    table = tomllib.loads(path.read_text())
    out = tmp_path / "run"
    argv = ["--config", str(path), *TINY_RUN, "--steps-per-epoch", "2", "--data-dir", str(data_dir)]
    argv += ["--out", str(out), "--no-report", "--eval-subset", "0"]
    if "sst-synth" in table:
        argv += ["--sst-synth", str(synth_file(tmp_path, data_dir))]
    metrics = train.train(train.parse_args(argv))
    assert set(metrics["dev"]) == ({"sst", "para", "sts"} if table["task"] == "all" else {table["task"]})
    saved = json.loads((out / "metrics.json").read_text())["config"]
    assert saved["recipe"]["file"] == str(path) and saved["recipe"]["text"] == path.read_text()
    assert saved["recipe"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    overridden = {"model", "device", "epochs", "steps-per-epoch", "out", "sst-synth", "eval-subset", "max-length"}
    for key, value in table.items():  # every other key of the file is a resolved flag of the run
        if key not in overridden:  # (max-length: cut to the tiny model's 32 positions)
            assert saved[key.replace("-", "_")] == value, key
    assert saved["steps_per_epoch"] == 2 and saved["model"] == str(TINY)


@pytest.mark.parametrize("path", MLM_RECIPES, ids=name)
def test_every_mlm_recipe_pretrains_two_steps(path, data_dir, tmp_path, monkeypatch):
    table = tomllib.loads(path.read_text())
    monkeypatch.chdir(tmp_path)  # the recipe's own text files (relative paths), written here
    for text in table.get("text", []):
        (tmp_path / text).write_text("".join(f"{text} line {i}: the cat sat on the mat .\n" for i in range(20)))
    out = tmp_path / "mlm"
    argv = ["--config", str(path), *TINY_RUN, "--max-steps", "2", "--data-dir", str(data_dir), "--out", str(out)]
    metrics = mlm.pretrain(mlm.parse_args(argv + ["--batch-size", "4"]))
    assert metrics["steps"] == 2
    saved = json.loads((out / "metrics.json").read_text())["config"]
    assert saved["recipe"]["file"] == str(path) and saved["lr"] == table["lr"]


def test_main_recipe_is_todays_defaults():
    plain, recipe = vars(train.parse_args([])), vars(train.parse_args(["--config", str(RECIPES / "main.toml")]))
    assert recipe.pop("config") == str(RECIPES / "main.toml") and recipe.pop("recipe")["file"]
    assert recipe == {k: v for k, v in plain.items() if k not in ("config", "recipe")}
    assert plain["config"] is None and plain["recipe"] is None


def test_command_line_overrides_the_file(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('lr = 3e-5\nschedule = "even"\npcgrad = true\nadam-betas = [0.8, 0.99]\nepochs = 4\n')
    args = train.parse_args(["--config", str(path), "--lr", "1e-3", "--schedule", "summed"])
    assert (args.lr, args.schedule, args.pcgrad, args.adam_betas, args.epochs) == (1e-3, "summed", True, [0.8, 0.99], 4)
    assert train.parse_args(["--lr", "1e-3"]).lr == 1e-3 and train.parse_args([]).schedule == "annealed"


@pytest.mark.parametrize(
    "text, message",
    [
        ('lr = 1e-4\nsst_loss = "dual"\n', ":2: sst_loss is not a flag of this script (write flags as on the "),
        ("epochs = 3\n\nbogus = 1\n", ":3: bogus is not a flag of this script"),
        ('epochs = "3"\n', ":1: epochs = '3': expected an integer"),
        ("lr = true\n", ":1: lr = True: expected a number"),
        ('# a comment\nschedule = "often"\n', ":2: schedule = 'often': choose from annealed, uniform"),
        ('pcgrad = "yes"\n', ":1: pcgrad = 'yes': expected true or false"),
        ("adam-betas = [0.9]\n", ":1: adam-betas = [0.9]: expected a list of 2 values"),
        ("model = 3\n", ':1: model = 3: expected a string (in quotes: "...")'),
        ("lr = 1e-4\n[smart]\nlambda = 1\n", ":2: [smart]: a recipe is flat"),
        ("lr = 1e-4\nepochs = \n", ":2: Invalid value (column 10)"),
        ("config = 'other.toml'\n", ":1: config is not a flag of this script"),
    ],
)
def test_a_bad_recipe_is_one_line_naming_its_file_and_line(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(SystemExit) as stop:
        train.parse_args(["--config", str(path)])
    assert str(stop.value.code).startswith(f"error: {path}{message}") and "\n" not in str(stop.value.code)


def test_a_missing_recipe_and_mlm_errors_are_one_line(tmp_path):
    with pytest.raises(SystemExit) as stop:
        train.parse_args(["--config", str(tmp_path / "none.toml")])
    assert str(stop.value.code).startswith(f"error: {tmp_path / 'none.toml'}: cannot read it")
    path = tmp_path / "bad.toml"
    path.write_text("out = 'runs/x'\nsmart = 1.0\n")  # a train.py flag, not one of mlm.py's
    with pytest.raises(SystemExit) as stop:
        mlm.parse_args(["--config", str(path)])
    assert str(stop.value.code) == f"error: {path}:2: smart is not a flag of this script"


def test_on_off_pairs_are_one_key(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text("out = 'runs/m'\ntask-text = false\ntext = ['a.txt']\n")
    (tmp_path / "a.txt").write_text("words\n")
    parser = mlm.get_parser()
    values = recipes.flag_values(parser, tomllib.loads(path.read_text()), path)
    assert values == {"out": "runs/m", "task_text": False, "text": ["a.txt"]}
    assert "no-task-text" not in recipes.flag_actions(parser)


# ----------------------------------------------------------------------------
# the ablation tables (recipes/ablations/*.toml) that reproduce.py runs

ABLATION_FILES = sorted((RECIPES / "ablations").glob("*.toml"))


@pytest.mark.parametrize("path", ABLATION_FILES, ids=lambda p: p.stem)
def test_every_ablation_row_is_a_valid_train_command(path, data_dir, tmp_path):
    """Each row's command line, as reproduce.py builds it, parses as train.py flags (choices and
    combinations checked too): a key or value train.py lacks fails here, not hours into a reproduction."""
    args = reproduce.parse_args(
        ["--data-dir", str(data_dir), "--results", str(tmp_path), "--synth", str(synth_file(tmp_path, data_dir))]
    )
    args.mlm_dir = tmp_path / "mlm"
    ablation = recipes.read_ablation(path)
    for row in ablation.rows:
        for flags in reproduce.flags_of(args, row):
            parsed = train.parse_args([*flags, "--data-dir", str(data_dir), "--out", str(tmp_path / "run")])
            for key, value in row.settings:  # the row's keys over its recipe's, unless the budget sets them
                if key not in ("epochs", "steps-per-epoch", "eval-subset", "model", "task"):
                    assert getattr(parsed, key.replace("-", "_")) == value, (row.label, key)


@pytest.mark.parametrize(
    "text, message",
    [
        ('title = "t"\n[[row]]\nlabel = "a"\nbase = "sustech"\nseet = { lr = 1.0 }\n', ":5: row 1: seet is not one of"),
        ('title = "t"\n[[row]]\nlabel = "a"\nbase = "nope"\n', ":4: row 1: base = 'nope': no "),
        (
            'title = "t"\n[[row]]\nlabel = "a"\nbase = "sustech"\nrefs = [{ source = "X T1", sst = "high" }]\n',
            ":5: row 1: refs: sst = 'high': expected a float",
        ),
        (
            'title = "t"\n[[row]]\nlabel = "a"\nbase = "sustech"\nsynth = "maybe"\n',
            ':5: row 1: synth is "needed" or "if-given"',
        ),
        ('title = "t"\n', ": an ablation needs a title and at least one [[row]]"),
    ],
)
def test_a_bad_ablation_file_is_one_error_naming_its_file(tmp_path, text, message):
    path = tmp_path / "01-bad.toml"
    path.write_text(text)
    with pytest.raises(recipes.RecipeError) as error:
        recipes.read_ablation(path)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_an_ablation_row_is_its_recipe_with_the_rows_keys_over_it():
    dual = next(r for r in recipes.read_ablation(RECIPES / "ablations" / "06-sst-loss.toml").rows if r.label == "dual")
    base = tomllib.loads((RECIPES / "cpu" / "bert-and-beyond.toml").read_text())
    assert dict(dual.settings) == {k: v for k, v in base.items() if k != "out"} | {"stagger-epochs": 2, "epochs": 4}
    assert dual.changed == ("epochs", "stagger-epochs") and dual.epochs == 4 and dual.base == "bert-and-beyond"
    assert [r.name for r in recipes.read_ablations()][:2] == ["pair-encoding", "smart-single"]  # in the files' order


def test_a_resumed_run_keeps_its_recipe_and_refuses_another(data_dir, tmp_path, capsys):
    path, out = tmp_path / "r.toml", tmp_path / "run"
    path.write_text('schedule = "uniform"\nsteps-per-epoch = 2\nbatch-size = 4\n')
    argv = ["--config", str(path), *TINY_RUN, "--data-dir", str(data_dir), "--out", str(out), "--no-report"]
    train.train(train.parse_args(argv))
    path.write_text('schedule = "even"\n')  # edited since: the run keeps what it was trained with
    metrics = train.train(train.parse_args(["--resume", str(out), "--epochs", "2"]))
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2] and metrics["config"]["schedule"] == "uniform"
    assert "uniform" in metrics["config"]["recipe"]["text"]
    other = tmp_path / "other.toml"
    other.write_text('schedule = "uniform"\n')
    with pytest.raises(SystemExit):  # a different recipe is a different run
        train.parse_args(["--resume", str(out), "--epochs", "3", "--config", str(other)])
    assert "cannot change --config (start a new run)" in capsys.readouterr().err

"""export.py: a fine-tuned run out as a Hugging Face folder plus its heads, and back in unchanged."""

import json
import shutil
import sys

import pytest
import torch
from conftest import TINY, make_course_data

import data
import export
import predict
import train
from minbert import BertModel
from tasks import TASKS


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A short fine-tuned run with cross-encoded pairs, one with bi-encoded pairs and concat heads,
    one with SUSTech's B1 heads sharing their layers (BERT++ §5-6), and one with cosine heads."""
    folder = tmp_path_factory.mktemp("export")
    make_course_data(folder / "data", n=24)
    runs = {}
    for name, extra in (
        ("cross", []),
        ("bi", ["--pair-encoding", "bi", "--bi-head", "concat", "--sst-dropout", "0.3"]),
        ("shared", ["--pair-encoding", "bi", "--bi-head", "sustech-b1", "--share-pair-heads", "--sst-loss", "dual"]),
        ("cosine", ["--pair-encoding", "bi"]),  # bi's default cosine head: 0-dim scale and shift (a traceback once)
    ):
        args = ["--model", str(TINY), "--data-dir", str(folder / "data"), "--out", str(folder / name), "--epochs", "1"]
        train.train(train.parse_args(args + ["--steps-per-epoch", "3", "--batch-size", "8", "--lr", "1e-3", *extra]))
        runs[name] = folder / name
    return runs


@pytest.mark.parametrize("name", ["cross", "bi", "shared", "cosine"])
def test_round_trip_gives_the_runs_outputs(trained, tmp_path, name):
    run_dir, out = trained[name], tmp_path / "export"
    export.export(run_dir, out)
    assert {p.name for p in out.iterdir()} == {
        "config.json",
        "model.safetensors",
        "vocab.txt",
        "heads.safetensors",
        "heads.json",
        export.MARK,
    }
    original, tokenizer, args = predict.load_trained(run_dir)
    # the encoder alone, through minBERT's own loader: the same [CLS] vectors
    bert = BertModel.from_pretrained(out).eval()
    batch = data.pad(*data.encode(tokenizer, [data.Example("1", "the cat is smart .", None, None)]).seqs[0], [0])
    with torch.no_grad():
        a = original.bert(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])["last_hidden_state"]
        b = bert(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])["last_hidden_state"]
    assert torch.equal(a[:, 0], b[:, 0])
    # encoder and heads together: the same predictions on every dev set
    again = export.load_export(out)
    meta = json.loads((out / "heads.json").read_text())
    assert meta["tasks"] == ["sst", "para", "sts"] and meta["head_config"]["sts_encoding"] == args["pair_encoding"]
    assert meta["num_classes"] == 5 and meta["max_length"] == args["max_length"]
    for task in meta["tasks"]:
        examples = data.read_examples(run_dir.parent / "data" / TASKS[task].files["dev"], task)
        task_data = data.encode(tokenizer, examples, args["pair_encoding"])
        p1, r1 = predict.predict(original, task, task_data)
        p2, r2 = predict.predict(again, task, task_data)
        assert (p1 == p2).all() and (r1 == r2).all()
    if name == "shared":  # the shared layers are one module again after loading
        assert again.heads["para"].proj_a is again.heads["sts"].proj_a


def test_heads_json_records_head_settings(trained, tmp_path):
    meta = export.export(trained["bi"], tmp_path / "bi")
    config = meta["head_config"]
    assert config["para_bi_head"] == "concat" and config["para_encoding"] == config["sts_encoding"] == "bi"
    assert config["dropout"] == {"sst": 0.3, "para": 0.1, "sts": 0.1}
    assert meta["heads"]["para"]["kind"] == "binary" and meta["source"]["epoch"] == 1


def cli(monkeypatch, *argv):
    """export.py's main() as the command line runs it: its exit code (0 when it returns)."""
    monkeypatch.setattr(sys, "argv", ["export.py", *map(str, argv)])
    try:
        export.main()
    except SystemExit as e:
        return e.code
    return 0


def test_command_line_refuses_a_full_folder_and_names_a_missing_run(trained, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    assert cli(monkeypatch, trained["cross"], "--out", out) == 0
    assert "is not empty: replace it with --overwrite" in cli(monkeypatch, trained["cross"], "--out", out)
    assert cli(monkeypatch, trained["cross"], "--out", out, "--overwrite") == 0
    code = cli(monkeypatch, tmp_path / "nothing", "--out", tmp_path / "o")
    assert code.startswith("error: ") and "best.pt" in code  # sys.exit("error: ...") prints it, exit status 1


def test_an_out_inside_another_run_is_refused_and_that_run_left_as_it_was(trained, monkeypatch, capsys):
    other = trained["bi"]  # a train.py run, but not the one exported
    before = {p: p.read_bytes() for p in other.rglob("*") if p.is_file()}
    out = other / "exported"
    code = cli(monkeypatch, trained["cross"], "--out", out)
    assert code.startswith(f"error: --out {out} is inside the run {other.resolve()}: choose a folder outside it")
    assert "\n" not in code and {p: p.read_bytes() for p in other.rglob("*") if p.is_file()} == before


def test_nothing_is_deleted_that_is_not_an_earlier_export(trained, tmp_path, monkeypatch, capsys):
    run_dir = trained["cross"]
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    for out, message in (
        (run_dir, "holds the run"),  # the run itself
        (run_dir.parent, "holds the run"),  # the folder holding it (and the other runs)
        (run_dir / "exported", "is inside the run"),
    ):
        code = cli(monkeypatch, run_dir, "--out", out, "--overwrite")
        assert code.startswith(f"error: --out {out} {message}") and "\n" not in code, code
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before and trained["bi"].is_dir()
    # a missing run is named before the good export in --out is touched
    good = tmp_path / "good"
    assert cli(monkeypatch, run_dir, "--out", good) == 0
    listing = sorted(p.name for p in good.iterdir())
    code = cli(monkeypatch, tmp_path / "missing", "--out", good, "--overwrite")
    assert code.startswith("error: ") and "best.pt: no such file" in code
    assert sorted(p.name for p in good.iterdir()) == listing
    # a best.pt whose weights do not fit its encoder_config (edited, or of another kind): one line
    odd = tmp_path / "odd"
    shutil.copytree(run_dir, odd)
    ckpt = torch.load(odd / "best.pt", weights_only=True)
    ckpt["encoder_config"]["num_hidden_layers"] = 1
    torch.save(ckpt, odd / "best.pt")
    code = cli(monkeypatch, odd, "--out", tmp_path / "from-odd")
    assert (
        code.startswith(f"error: {odd / 'best.pt'}: its encoder does not fit its encoder_config (") and "\n" not in code
    )
    shutil.rmtree(odd)
    # a run that lost its tokenizer/ (only best.pt copied) is named too, not a traceback
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "best.pt").write_bytes((run_dir / "best.pt").read_bytes())
    code = cli(monkeypatch, bare, "--out", tmp_path / "from-bare")
    assert code.startswith("error: ") and f"{bare / 'tokenizer' / 'vocab.txt'}: no such file" in code
    (bare / "best.pt").unlink()
    bare.rmdir()
    # a folder that is not an export is never replaced; a file is not a folder
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "thesis.tex").write_text("years of work\n")
    assert "is not an export" in cli(monkeypatch, run_dir, "--out", notes, "--overwrite")
    assert (notes / "thesis.tex").read_text() == "years of work\n"
    (tmp_path / "file").write_text("x")
    assert (
        cli(monkeypatch, run_dir, "--out", tmp_path / "file")
        == f"error: --out {tmp_path / 'file'} is a file, not a folder"
    )
    # --overwrite of an earlier export: replaced whole, and nothing left beside it
    assert cli(monkeypatch, run_dir, "--out", good, "--overwrite") == 0
    assert sorted(p.name for p in good.iterdir()) == listing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "good", "notes"]

"""mlm.py: BERT's masking, the MLM head against Hugging Face's, and tiny pretraining runs end to end
(the held-out loss falls, the folder fine-tunes, resume equals an uninterrupted run)."""

import json
import os
import re
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import DEVICE, ROOT, TINY, exact_attention, make_course_data

import files
import mlm
import report
import train
from tokenizer import build_tokenizer

FIXTURES = ROOT / "tests" / "fixtures"
TINY_MLM = FIXTURES / "tiny_bert_mlm"  # a BertForPreTraining laid out as bert-base-uncased: it has an MLM head
CLS, SEP, MASK, V = 2, 3, 4, 100  # the tiny vocabulary's special ids and size


def random_batch(B, T, seed):
    """Padded rows "[CLS] w ... w [SEP] 0 0": ordinary ids 5..V-1, lengths 3..T."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, T + 1, (B,), generator=g)
    ids = torch.randint(5, V, (B, T), generator=g)
    positions = torch.arange(T)[None, :]
    ids[:, 0] = CLS
    ids = torch.where(positions == (lengths[:, None] - 1), SEP, ids)
    ids = ids.masked_fill(positions >= lengths[:, None], 0)
    special = (positions == 0) | (positions >= lengths[:, None] - 1)  # [CLS], [SEP], padding
    return ids, special


# ----------------------------------------------------------------------------
# masking


def test_masking_chooses_15_percent_per_sequence_and_splits_80_10_10():
    ids, special = random_batch(4000, 40, seed=0)
    inputs, labels = mlm.mask_tokens(ids, special, V, torch.Generator().manual_seed(1), MASK)
    chosen = labels != -100
    n = (~special).sum(1)
    assert torch.equal(chosen.sum(1), torch.floor(n * 0.15 + 0.5).clamp(min=1))  # per sequence, BERT's count
    assert not (chosen & special).any()  # [CLS], [SEP] and padding never chosen
    assert torch.equal(labels[chosen], ids[chosen])  # labels: the original token, exactly where chosen
    assert torch.equal(inputs[~chosen], ids[~chosen])  # nothing else changes
    masked = (inputs[chosen] == MASK).float().mean().item()
    kept = (inputs[chosen] == ids[chosen]).float().mean().item()  # 10% kept, plus random draws of the same id
    other = 1 - masked - kept
    # ~27,000 chosen tokens: the standard error of each share is under 0.003
    assert abs(masked - 0.8) < 0.015 and abs(kept - (0.1 + 0.1 / V)) < 0.015 and abs(other - 0.1) < 0.015


def test_masking_rate_flag_and_seeds():
    ids, special = random_batch(500, 40, seed=2)
    _, a = mlm.mask_tokens(ids, special, V, torch.Generator().manual_seed(3), MASK, prob=0.3)
    n = (~special).sum(1)
    assert torch.equal((a != -100).sum(1), torch.floor(n * 0.3 + 0.5).clamp(min=1))
    _, b = mlm.mask_tokens(ids, special, V, torch.Generator().manual_seed(3), MASK, prob=0.3)
    _, c = mlm.mask_tokens(ids, special, V, torch.Generator().manual_seed(4), MASK, prob=0.3)
    assert torch.equal(a, b) and not torch.equal(a, c)
    # the generator of a step depends on (seed, epoch, step): new masks each epoch, the same on resume
    draws = [torch.rand(3, generator=mlm.seeded(*key)) for key in ((0, 0, 5), (0, 1, 5), (0, 0, 5), (1, 0, 5))]
    assert torch.equal(draws[0], draws[2]) and not torch.equal(draws[0], draws[1])
    assert not torch.equal(draws[0], draws[3])


# ----------------------------------------------------------------------------
# the MLM head


def test_head_matches_hugging_face_logits(capsys):
    ref = np.load(FIXTURES / "tiny_mlm_ref.npz", allow_pickle=False)
    model = mlm.load_model(TINY_MLM).eval()
    assert "loaded its MLM head" in capsys.readouterr().out
    inputs = {k: torch.from_numpy(ref[k]) for k in ("input_ids", "attention_mask", "token_type_ids")}
    with torch.no_grad():
        logits = model(**inputs)  # (B, T, V)
    real = inputs["attention_mask"].bool()
    torch.testing.assert_close(logits[real], torch.from_numpy(ref["logits"])[real], atol=1e-5, rtol=0)


def test_head_is_initialised_when_the_model_has_none(capsys):
    model = mlm.load_model(TINY)
    assert "no MLM head" in capsys.readouterr().out
    assert torch.equal(model.head.bias, torch.zeros(V)) and torch.equal(model.head.ln.weight, torch.ones(32))


def test_loss_at_chosen_rows_equals_full_logits_with_ignore_index():
    model = mlm.load_model(TINY_MLM).eval()
    ids, special = random_batch(16, 20, seed=5)
    inputs, labels = mlm.mask_tokens(ids, special, V, torch.Generator().manual_seed(6), MASK)
    batch = {"input_ids": inputs, "attention_mask": (ids != 0).long(), "token_type_ids": torch.zeros_like(ids)}
    with torch.no_grad():
        loss, correct = model.loss(batch, labels)
        logits = model(**batch)  # (B, T, V)
    torch.testing.assert_close(loss, F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100))
    assert int(correct) == int((logits.argmax(-1) == labels)[labels != -100].sum())


# ----------------------------------------------------------------------------
# runs


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    make_course_data(folder, n=30)
    return folder


def run(data_dir, out, *extra, model=TINY):
    args = ["--model", str(model), "--data-dir", str(data_dir), "--out", str(out), "--epochs", "2"]
    args += ["--batch-size", "16", "--lr", "2e-3", "--holdout", "0.1", "--log-every", "5", "--device", DEVICE.type]
    args += extra
    return mlm.pretrain(mlm.parse_args(args))


def test_tiny_run_lowers_held_out_loss_and_fine_tunes(data_dir, tmp_path):
    out = tmp_path / "mlm"
    metrics = run(data_dir, out)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["heldout_best"] == metrics["heldout_best"] and len(saved["epochs"]) == 2
    assert metrics["heldout_best"]["loss"] < metrics["heldout_start"]["loss"] - 0.3
    e = saved["epochs"][-1]
    assert e["perplexity"] == pytest.approx(np.exp(e["loss"])) and 0 <= e["accuracy"] <= 1 and e["tokens"] > 0
    assert {p.name for p in (out / "encoder").iterdir()} == {"config.json", "model.safetensors", "vocab.txt"}
    # the folder holds the best epoch's model (the last here), head included
    assert saved["best_epoch"] == 2
    last = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)["model"]
    again = mlm.load_model(out / "encoder").state_dict()
    assert again.keys() == last.keys() and all(torch.equal(again[k], v) for k, v in last.items())
    with pytest.raises(SystemExit, match=f"^error: {re.escape(str(out))}: an mlm.py run .*fine-tune its encoder"):
        report.main([str(out)])  # its page is a fine-tuning run's, which the MLM run is not
    args = ["--model", str(out / "encoder"), "--data-dir", str(data_dir), "--out", str(tmp_path / "ft")]
    result = train.train(train.parse_args(args + ["--epochs", "1", "--steps-per-epoch", "3", "--batch-size", "8"]))
    assert set(result["dev"]) == {"sst", "para", "sts"}


def interrupt_at(monkeypatch, step):
    """A real SIGINT (as Ctrl-C sends) at a given global step."""
    real, fired = mlm.get_lr, []

    def get_lr(global_step, *rest):
        if global_step == step and not fired:
            fired.append(step)
            os.kill(os.getpid(), signal.SIGINT)
        return real(global_step, *rest)

    monkeypatch.setattr(mlm, "get_lr", get_lr)


def test_resume_after_a_stop_equals_an_uninterrupted_run(data_dir, tmp_path, monkeypatch):
    with exact_attention():
        full = run(data_dir, tmp_path / "full", "--seed", "3")
        with monkeypatch.context() as m:
            interrupt_at(m, 4)  # step 5 of epoch 1
            assert run(data_dir, tmp_path / "cut", "--seed", "3") is None
        assert not (tmp_path / "cut" / "metrics.json").exists()
        resumed = mlm.pretrain(mlm.parse_args(["--resume", str(tmp_path / "cut")]))
    assert resumed["epochs"] == full["epochs"] and resumed["heldout_start"] == full["heldout_start"]
    a, b = (
        torch.load(p / "checkpoint.pt", map_location="cpu", weights_only=True)["model"]
        for p in (tmp_path / "full", tmp_path / "cut")
    )
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_checkpoint_from_before_the_shared_loop_still_resumes(data_dir, tmp_path, monkeypatch):
    """mlm.py's own loop kept the epoch's losses as a list, without training hits; loop.py's keeps
    them by task. A run stopped mid-epoch under the old loop resumes as if never stopped."""
    with exact_attention():
        full = run(data_dir, tmp_path / "full", "--seed", "3")
        with monkeypatch.context() as m:
            interrupt_at(m, 4)  # step 5 of epoch 1: the epoch's first losses are in the checkpoint
            assert run(data_dir, tmp_path / "cut", "--seed", "3") is None
        path = tmp_path / "cut" / "checkpoint.pt"
        ckpt = torch.load(path, weights_only=True)
        ckpt["state"]["epoch_loss"] = ckpt["state"]["epoch_loss"]["mlm"]  # the old layout
        del ckpt["state"]["epoch_hits"]
        torch.save(ckpt, path)
        resumed = mlm.pretrain(mlm.parse_args(["--resume", str(tmp_path / "cut")]))
    assert resumed["epochs"] == full["epochs"]  # train_loss included: epoch 1's losses from before the stop count


def test_max_steps_text_files_and_chunking(data_dir, tmp_path):
    text = tmp_path / "text.txt"
    long_doc = " ".join(["the cat sat on the mat"] * 20)  # 120 tokens: 9 chunks of <= 14 between [CLS] and [SEP]
    short = [f"a {w} ran in the park ." for w in ("dog", "cat", "man", "woman", "girl", "boy")]
    text.write_text("\n".join([long_doc, "", *short, short[0]]) + "\n")  # a blank line and a duplicate
    out = tmp_path / "run"
    extra = ["--no-task-text", "--text", str(text), "--max-length", "16", "--max-steps", "3", "--batch-size", "2"]
    metrics = run(data_dir, out, *extra)
    assert metrics["steps"] == 3 and metrics["epochs"][0]["steps"] == 3  # stopped by --max-steps
    assert metrics["sequences"]["train"] + metrics["sequences"]["heldout"] == 9 + 6
    with_task = run(data_dir, tmp_path / "both", "--text", str(text), "--max-steps", "1")
    assert with_task["sequences"]["train"] > 50  # the task sentences as well


class Counted:
    """The tokenizer's wordpiece model, counting what tokenize() asks of it."""

    def __init__(self, wordpiece):
        self.wordpiece, self.longest, self.reads, self.encodings = wordpiece, 0, 0, 0

    def encode_batch(self, texts, **kwargs):
        self.longest = max([self.longest, *map(len, texts)])
        self.encodings += len(texts)
        return [CountedEncoding(self, e) for e in self.wordpiece.encode_batch(texts, **kwargs)]


class CountedEncoding:
    def __init__(self, counter, encoding):
        self.counter, self.encoding = counter, encoding

    @property
    def ids(self):  # tokenizers builds a new list at each read: reading it per chunk is quadratic
        self.counter.reads += 1
        return self.encoding.ids


def test_chunking_is_linear_and_cuts_the_whole_encoding(tmp_path):
    tokenizer = build_tokenizer(TINY, 16)
    texts = [" ".join(["the cat, sat on\tthe mat !"] * 40), "a dog .", "x" * 50 + " " + "y" * 3]
    room = 16 - 2
    reference = []  # the plain way: encode the whole text, cut its ids every 14 tokens
    for text in texts:
        ids = tokenizer.wordpiece.encode(text, add_special_tokens=False).ids
        reference += [[CLS, *ids[i : i + room], SEP] for i in range(0, len(ids), room)]
    counter = tokenizer.wordpiece = Counted(tokenizer.wordpiece)
    corpus = mlm.tokenize(tokenizer, texts, 16, span=30)
    assert [x.tolist() for x in corpus.ids] == reference and len(reference) > 20
    assert corpus.lengths.tolist() == [len(x) for x in reference]
    # linear: the tokenizer sees short pieces (at most a span and a word), each read once
    assert counter.longest <= 30 + len("x" * 50) and counter.reads == counter.encodings > len(texts)


def test_chunks_fit_the_models_positions(data_dir, tmp_path):
    text = tmp_path / "long.txt"
    text.write_text(" ".join(["the cat sat on the mat"] * 100) + "\n")  # 600 tokens, one line
    metrics = run(data_dir, tmp_path / "run", "--text", str(text), "--max-steps", "1")  # --max-length 128
    assert metrics["config"]["max_length"] == 32  # the tiny model's positions, not an IndexError


def test_holdout_and_batch_size_flags(data_dir, tmp_path):
    a = run(data_dir, tmp_path / "a", "--max-steps", "1")
    b = run(data_dir, tmp_path / "b", "--max-steps", "1", "--holdout", "0.3", "--batch-size", "4")
    assert b["sequences"]["heldout"] > 2 * a["sequences"]["heldout"]
    assert b["epochs"][0]["steps"] == 1
    assert b["config"]["batch_size"] == 4
    c = run(data_dir, tmp_path / "c", "--max-steps", "1", "--mask-prob", "0.4")
    assert c["heldout_start"]["tokens"] > 2 * a["heldout_start"]["tokens"]  # same held-out text, more masked


def test_bad_input_is_named(data_dir, tmp_path, capsys):
    run(data_dir, tmp_path / "run", "--max-steps", "1")
    with pytest.raises(SystemExit, match="already holds a run"):
        run(data_dir, tmp_path / "run", "--max-steps", "1")
    with pytest.raises(SystemExit):
        mlm.parse_args(["--out", str(tmp_path / "x"), "--no-task-text"])
    assert "--no-task-text needs at least one --text" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        mlm.parse_args(["--out", str(tmp_path / "x"), "--holdout", "0"])
    assert "--holdout is a share" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        mlm.parse_args(["--out", str(tmp_path / "x"), "--text", str(tmp_path / "absent.txt")])
    assert "absent.txt: no such file" in capsys.readouterr().err
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\nnot \xff utf-8\n")
    with pytest.raises(mlm.data.DataError, match=rf"{bad}:2: not UTF-8"):
        run(data_dir, tmp_path / "bad", "--text", str(bad))
    # Texts the tokenizer empties (a zero-width space) left a corpus without sequences: a traceback
    empty = tmp_path / "empty.txt"
    empty.write_text("the movie is good\nthe cat\n\u200b\n", encoding="utf-8")
    flags = ["--no-task-text", "--text", str(empty), "--holdout", "0.3", "--seed", "0"]
    with pytest.raises(mlm.data.DataError, match=r"the held-out texts hold no tokens \(3 texts in all\)"):
        run(data_dir, tmp_path / "empty", *flags)


def test_dev_sentences_are_refused_as_task_text(data_dir, tmp_path):
    dev = data_dir / "sts-dev.csv"
    with pytest.raises(mlm.data.DataError, match=rf"{dev}:2: id .* is also row 2 of the dev file {dev}: dev data"):
        run(data_dir, tmp_path / "run", "--sts-train", str(dev))
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_resume_refuses_a_changed_setting(data_dir, tmp_path, capsys):
    run(data_dir, tmp_path / "run", "--max-steps", "2")
    with pytest.raises(SystemExit):
        mlm.parse_args(["--resume", str(tmp_path / "run"), "--lr", "1"])
    assert "cannot change --lr" in capsys.readouterr().err
    # --max-steps 2 ended it, and --resume keeps --max-steps: more epochs would train nothing more,
    # so the message points to a new run from the encoder instead (it once said "add --epochs N").
    for more in ([], ["--epochs", "5"]):
        with pytest.raises(SystemExit, match=r"is finished \(--max-steps 2\).*--model .*encoder"):
            mlm.parse_args(["--resume", str(tmp_path / "run"), *more])
    assert Path(tmp_path / "run" / "encoder" / "config.json").is_file()


def test_resume_of_a_run_that_ran_its_epochs_asks_for_more(data_dir, tmp_path):
    run(data_dir, tmp_path / "run", "--epochs", "1", "--max-steps", "100")  # 1 epoch is fewer steps
    with pytest.raises(SystemExit, match=r"is finished \(1 epochs\); to train on, add --epochs N \(N > 1\)"):
        mlm.parse_args(["--resume", str(tmp_path / "run")])
    metrics = mlm.pretrain(mlm.parse_args(["--resume", str(tmp_path / "run"), "--epochs", "2"]))
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]


def test_resume_refuses_the_other_scripts_run(data_dir, tmp_path, capsys):
    run(data_dir, tmp_path / "mlm", "--max-steps", "1")
    flags = ["--model", str(TINY), "--data-dir", str(data_dir), "--task", "sst", "--epochs", "1"]
    train.train(train.parse_args([*flags, "--steps-per-epoch", "1", "--out", str(tmp_path / "train")]))
    for parse, folder in ((train.parse_args, "mlm"), (mlm.parse_args, "train")):
        for more in ([], ["--epochs", "3"]):  # (train.py once said "add --epochs N", then failed loading)
            with pytest.raises(SystemExit):
                parse(["--resume", str(tmp_path / folder), *more])
            assert "checkpoint.pt is another script's run" in capsys.readouterr().err
    assert not (tmp_path / "mlm" / "tokenizer").exists()


def test_resume_stops_when_a_text_file_changed(data_dir, tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("the cat sat on the mat .\na dog ran in the park .\n")
    run(data_dir, tmp_path / "run", "--text", str(text), "--epochs", "1")
    text.write_text("the cat sat on the hat .\na dog ran in the park .\n")
    with pytest.raises(SystemExit, match=re.escape(f"{text} changed since the run started")):
        mlm.pretrain(mlm.parse_args(["--resume", str(tmp_path / "run"), "--epochs", "2"]))


def test_a_folder_in_use_is_refused_before_anything_is_replaced(data_dir, tmp_path):
    out = tmp_path / "run"
    run(data_dir, out, "--max-steps", "1")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with files.locked(out):  # as a train.py or mlm.py still running there holds it
        with pytest.raises(files.LockError, match=f"{out} is in use: process {os.getpid()} "):
            run(data_dir, out, "--max-steps", "1", "--overwrite")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_mlm_refuses_torchrun(tmp_path, monkeypatch, capsys):
    """mlm.py never joins a process group: under torchrun each process would train the same model
    alone, all writing one --out."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(SystemExit):
        mlm.parse_args(["--out", str(tmp_path / "m")])
    assert "mlm.py runs in one process; start it with python, not torchrun" in capsys.readouterr().err

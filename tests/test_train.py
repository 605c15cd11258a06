"""train.py end to end on a tiny model and tiny task files: outputs, overfitting one batch,
resuming, reproducibility, and the options around them."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import DEVICE, ROOT, TINY, exact_attention, make_course_data, write_course_file

import data
import loop
import report
import train
from minbert import BertConfig, BertModel
from tasks import TASKS


def run(data_dir, out, *extra):
    args = [
        "--model",
        str(TINY),
        "--data-dir",
        str(data_dir),
        "--out",
        str(out),
        "--epochs",
        "2",
        "--steps-per-epoch",
        "6",
        "--batch-size",
        "8",
        "--lr",
        "1e-3",
        "--log-every",
        "3",
        "--device",
        DEVICE.type,
        "--amp",
        "off",  # fp32 on a GPU too (auto would be bf16); a test may ask for another after this
        *extra,
    ]
    return train.train(train.parse_args(args))


def best_state(out):
    return torch.load(Path(out) / "best.pt", map_location="cpu", weights_only=True)["model"]


def test_end_to_end_writes_metrics_predictions_and_checkpoints(data_dir, tmp_path):
    metrics = run(data_dir, tmp_path / "run")
    out = tmp_path / "run"
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["dev"] == metrics["dev"] and set(saved["dev"]) == {"sst", "para", "sts"}
    assert [e["epoch"] for e in saved["epochs"]] == [1, 2] and saved["best_epoch"] in (1, 2)
    assert set(saved["epochs"][0]["train_loss"]) <= {"sst", "para", "sts"}
    assert sum(saved["examples_seen"].values()) == 2 * 6 * 8  # every step one batch of 8
    assert saved["config"]["steps_per_epoch"] == 6 and saved["wall_time_s"] > 0
    for name in ("checkpoint.pt", "best.pt", "tokenizer/vocab.txt"):
        assert (out / name).is_file()
    predictions = out / "predictions"
    for task, prefix in (("sst", "s"), ("para", "p"), ("sts", "t")):
        for split, n in (("dev", 24), ("test", 12)):
            rows = (predictions / f"{task}-{split}-output.csv").read_text().splitlines()
            assert sorted(r.split(" , ")[0] for r in rows[1:]) == sorted(f"{prefix}{split}{i}" for i in range(n))
            raw = (predictions / f"{task}-{split}-raw.csv").read_text().splitlines()
            assert len(raw) == n + 1 and len(raw[1].split("\t")) == (6 if task == "sst" else 2)
    # The dev predictions reproduce the reported dev metric.
    sst_pred = dict(r.split(" , ") for r in (predictions / "sst-dev-output.csv").read_text().splitlines()[1:])
    labels = {
        line.split("\t")[1]: line.split("\t")[3] for line in (data_dir / "ids-sst-dev.csv").read_text().splitlines()[1:]
    }
    accuracy = sum(sst_pred[i].strip() == labels[i] for i in labels) / len(labels)
    assert abs(accuracy - saved["dev"]["sst"]) < 1e-9


def test_predict_cli_reads_stdin(data_dir, tmp_path):
    run(data_dir, tmp_path / "run", "--task", "sts")
    result = subprocess.run(
        [sys.executable, "predict.py", str(tmp_path / "run"), "--task", "sts"],
        cwd=ROOT,
        input="the cat .\tthe cat .\nthe dog fun .\tlove life music .\n",
        capture_output=True,
        text=True,
        check=True,
    )
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2 and all(0.0 <= float(line.split("\t")[0]) <= 5.0 for line in lines)
    bad = subprocess.run(
        [sys.executable, "predict.py", str(tmp_path / "run"), "--task", "sts"],
        cwd=ROOT,
        input="only one sentence\n",
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and "line 1: expected two tab-separated sentences" in bad.stderr


def test_overfit_one_batch(data_dir, tmp_path):
    metrics = run(
        data_dir,
        tmp_path / "run",
        "--task",
        "sst",
        "--overfit-batch",
        "--steps-per-epoch",
        "60",
        "--lr",
        "3e-3",
        "--dropout",
        "0",
        "--encoder-dropout",
        "0",
        "--warmup",
        "0",
    )
    first, last = metrics["epochs"][0]["train_loss"]["sst"], metrics["epochs"][-1]["train_loss"]["sst"]
    assert first > 0.1 and last < 0.05  # started near ln(5) = 1.6; ends memorised


def test_same_seed_same_metrics_other_seed_differs(data_dir, tmp_path):
    with exact_attention():  # bit-for-bit on a GPU too (make gpu-check runs this file)
        a = run(data_dir, tmp_path / "a", "--seed", "1")
        b = run(data_dir, tmp_path / "b", "--seed", "1")
    c = run(data_dir, tmp_path / "c", "--seed", "2")
    assert a["dev"] == b["dev"] and a["epochs"] == b["epochs"]
    assert a["epochs"] != c["epochs"]


def interrupt_at(monkeypatch, step, how):
    """Stop a run at a given global step: a real SIGINT (as Ctrl-C sends), or a crash."""
    real, fired = train.get_lr, []

    def get_lr(global_step, *rest):
        if global_step == step and not fired:
            fired.append(step)
            if how == "sigint":
                os.kill(os.getpid(), signal.SIGINT)
            else:
                raise RuntimeError("simulated crash")
        return real(global_step, *rest)

    monkeypatch.setattr(train, "get_lr", get_lr)


@pytest.mark.parametrize(
    "how,amp", [("sigint", "off"), ("crash", "off"), ("crash", "fp16")], ids=["sigint", "crash", "fp16-crash"]
)
def test_resume_equals_uninterrupted(data_dir, tmp_path, monkeypatch, how, amp):
    # fp16 is the GPU's loss-scaled path (GradScaler), run here on the CPU: its scale is checkpointed too.
    extra = ["--save-every", "4", "--seed", "3", "--amp", amp]
    with exact_attention():
        full = run(data_dir, tmp_path / "full", *extra)
        with monkeypatch.context() as m:
            interrupt_at(m, 8, how)  # global step 8 = step 3 of epoch 2
            if how == "sigint":
                assert run(data_dir, tmp_path / "cut", *extra) is None  # finishes step 8, saves, returns
            else:
                with pytest.raises(RuntimeError, match="simulated crash"):
                    run(data_dir, tmp_path / "cut", *extra)  # dies; the last save (--save-every 4) was after step 7
        resumed = train.train(train.parse_args(["--resume", str(tmp_path / "cut")]))
    assert resumed["dev"] == full["dev"]
    assert resumed["epochs"] == full["epochs"]
    a, b = best_state(tmp_path / "full"), best_state(tmp_path / "cut")
    assert all(torch.equal(a[k], b[k]) for k in a)
    scaler = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["scaler"]
    assert ("scale" in scaler) == (amp == "fp16")  # an enabled GradScaler saved its state


def test_freeze_encoder_trains_only_heads(data_dir, tmp_path):
    run(data_dir, tmp_path / "frozen", "--task", "sst", "--freeze-encoder")
    run(data_dir, tmp_path / "untrained", "--task", "sst", "--lr", "0", "--warmup", "0")  # same seed, same init
    frozen, untrained = best_state(tmp_path / "frozen"), best_state(tmp_path / "untrained")
    assert all(torch.equal(frozen[k], untrained[k]) for k in frozen if k.startswith("bert."))
    assert not torch.equal(frozen["heads.sst.out.weight"], untrained["heads.sst.out.weight"])


def test_init_from_a_single_task_run(data_dir, tmp_path, capsys):
    run(data_dir, tmp_path / "para", "--task", "para")
    para = best_state(tmp_path / "para")
    run(data_dir, tmp_path / "all", "--init-from", str(tmp_path / "para" / "best.pt"), "--lr", "0", "--warmup", "0")
    assert "new heads ['sst', 'sts']" in capsys.readouterr().out
    after = best_state(tmp_path / "all")
    assert all(torch.equal(after[k], v) for k, v in para.items())  # lr 0: encoder and para head as loaded


def test_init_from_is_checked_before_anything_is_deleted(data_dir, tmp_path, capsys):
    src = tmp_path / "src"
    run(data_dir, src, "--task", "sst", "--epochs", "1")
    before = sorted(p.name for p in src.iterdir())
    flags = ["--model", str(TINY), "--data-dir", str(data_dir), "--task", "sst"]
    for extra, message in [
        (["--init-from", str(src / "best.pt"), "--out", str(src), "--overwrite"], "inside --out"),
        (["--init-from", str(tmp_path / "absent.pt"), "--out", str(src), "--overwrite"], "absent.pt: no such file"),
        (["--init-from", str(TINY / "model.safetensors"), "--out", str(src), "--overwrite"], "a model's weights"),
    ]:
        with pytest.raises(SystemExit):
            train.parse_args([*flags, *extra])
        assert message in capsys.readouterr().err
        assert sorted(p.name for p in src.iterdir()) == before  # the run is all there


def test_init_from_an_encoder_of_another_size_is_one_line(data_dir, tmp_path):
    run(data_dir, tmp_path / "src", "--task", "sst", "--epochs", "1")
    ckpt = torch.load(tmp_path / "src" / "best.pt", weights_only=True)
    ckpt["model"] = {
        k: torch.zeros(*(2 * n for n in v.shape)) if k.startswith("bert.") else v for k, v in ckpt["model"].items()
    }
    torch.save(ckpt, tmp_path / "bigger.pt")
    with pytest.raises(SystemExit, match=r"bigger.pt: its encoder is not the size of --model's \(bert\..* is \("):
        run(data_dir, tmp_path / "run", "--init-from", str(tmp_path / "bigger.pt"))


def test_resume_of_an_init_from_run_needs_no_init_file(data_dir, tmp_path):
    run(data_dir, tmp_path / "src", "--task", "sst", "--epochs", "1")
    (tmp_path / "src" / "best.pt").rename(tmp_path / "init.pt")
    run(data_dir, tmp_path / "run", "--init-from", str(tmp_path / "init.pt"), "--epochs", "1")
    (tmp_path / "init.pt").unlink()  # its weights are in the run's checkpoint.pt now
    longer = train.train(train.parse_args(["--resume", str(tmp_path / "run"), "--epochs", "2"]))
    assert [e["epoch"] for e in longer["epochs"]] == [1, 2]


def test_nan_loss_stops_with_a_clear_message(data_dir, tmp_path):
    with pytest.raises(SystemExit, match=r"loss is (nan|inf) at epoch \d+ step \d+"):
        run(
            data_dir,
            tmp_path / "run",
            "--task",
            "sts",
            "--lr",
            "1e12",
            "--clip",
            "0",
            "--warmup",
            "0",
            "--steps-per-epoch",
            "20",
        )


def test_bad_flags_and_files_are_named(data_dir, tmp_path, capsys):
    with pytest.raises(SystemExit):
        train.parse_args(["--steps-per-epoch", "0"])
    assert "--steps-per-epoch must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train.parse_args(["--pcgrad"])
    assert "--schedule summed" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    write_course_file(bad, ["id", "sentence", "sentiment"], [("x1", "fine .", 3), ("x2", "oops .", "seven")])
    from data import DataError

    with pytest.raises(DataError, match=rf"{bad}:3: sentiment must be an integer"):
        run(data_dir, tmp_path / "run", "--task", "sst", "--sst-train", str(bad))


@pytest.mark.parametrize("task", ["sst", "para"])
def test_dev_rows_are_refused_as_training_rows(data_dir, tmp_path, task):
    from data import DataError

    dev = data_dir / TASKS[task].files["dev"]
    train_and_dev = tmp_path / "train-and-dev.csv"  # dev appended to train: its rows keep their ids
    train_text = (data_dir / TASKS[task].files["train"]).read_text()
    train_and_dev.write_text(train_text + dev.read_text().split("\n", 1)[1])
    # the message names the row's line in the training file: dev's first row follows train's last line
    for path, line in ((dev, 2), (train_and_dev, len(train_text.splitlines()) + 1)):
        with pytest.raises(DataError, match=rf"{path}:{line}: id .* is also row 2 of the dev file {dev}: dev data"):
            run(data_dir, tmp_path / "run", "--task", task, f"--{task}-train", str(path), "--overwrite")
        assert not (tmp_path / "run" / "checkpoint.pt").exists()


# ----------------------------------------------------------------------------
# SMART, PCGrad and mixed precision inside the loop


def test_smart_weight_is_off_at_lambda_zero_and_changes_the_gradients_when_on(data_dir):
    args = train.parse_args(["--model", str(TINY), "--smart", "0"])
    part = train.Part(batch=None, size=4, fraction=0.25, whole=16, share=1.0, last=True)
    assert not train.smart_on(args, "sst")  # off: the plain loss, no regularizer computed
    model = train.build_model(args, TINY, ["sst", "para", "sts"], 5).eval()  # eval: no dropout randomness
    batch = {
        "input_ids": torch.tensor([[2, 5, 30, 3], [2, 31, 3, 0]]),
        "attention_mask": torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]]),
        "token_type_ids": torch.zeros(2, 4, dtype=torch.long),
        "labels": torch.tensor([1, 4]),
    }
    grads = []
    for smart in (0.0, 1.0):
        args.smart = smart
        model.zero_grad()
        train.task_loss(model, model, "sst", train.Part(batch, 2, 1.0, 2, 1.0, True), args)[0].backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert any(not torch.equal(grads[0][n], grads[1][n]) for n in grads[0])
    # λ as given for the project variant's batch mean; the normalize variant's batch sum counts a
    # quarter of the batch 4 times, so the parts add up to the whole batch's (grad-accum, torchrun)
    args.smart, args.smart_tasks = 2.0, "sst,para"
    assert train.smart_on(args, "sst") and not train.smart_on(args, "sts")
    args.smart_variant = "project"
    assert train.smart_weight(args, part) == 2.0
    args.smart_variant = "normalize"
    assert train.smart_weight(args, part) == 8.0


def test_grad_accum_keeps_the_normalize_variants_lambda(data_dir, tmp_path):
    # The same weights and batch: the step-1 loss with 1 or 2 micro-batches. It was halved (the
    # summed regularizer weighted as a mean). Here both micro-batches pad to the whole batch's
    # length, so SMART's random start draws the same numbers and the two agree closely; with
    # shorter parts the start differs (test_smart checks the ascent with its batch share).
    flags = ["--task", "sst", "--epochs", "1", "--steps-per-epoch", "1", "--dropout", "0", "--encoder-dropout", "0"]
    flags += ["--smart", "1000", "--smart-variant", "normalize"]
    one, two = (
        run(data_dir, tmp_path / f"g{n}", *flags, "--grad-accum", str(n))["epochs"][0]["train_loss"]["sst"]
        for n in (1, 2)
    )
    assert two == pytest.approx(one, rel=1e-4) and one > 100  # (the regularizer dominates the loss)


@pytest.mark.parametrize(
    "extra,baseline",
    [
        (["--smart", "3"], []),
        (["--smart", "3", "--pair-encoding", "bi", "--smart-norm", "l2"], ["--pair-encoding", "bi"]),
        (["--smart", "1", "--smart-variant", "normalize", "--smart-tasks", "sst,para"], []),
        (["--schedule", "summed", "--pcgrad", "--pcgrad-reduction", "mean"], ["--schedule", "summed"]),
        (
            ["--amp", "bf16", "--schedule", "summed", "--pcgrad", "--smart", "1"],
            ["--amp", "bf16", "--schedule", "summed"],
        ),
    ],
    ids=["smart-cross", "smart-bi-l2", "smart-normalize", "pcgrad", "bf16"],
)
def test_regularized_runs_finish_and_differ_from_plain(data_dir, tmp_path, extra, baseline):
    plain = run(data_dir, tmp_path / "plain", *baseline)
    regularized = run(data_dir, tmp_path / "reg", *extra)
    assert set(regularized["dev"]) == {"sst", "para", "sts"}
    assert regularized["epochs"] != plain["epochs"]  # the regularizer changed the training


# ----------------------------------------------------------------------------
# nothing lost: run folders, flags, resuming (issue 11)


def test_an_existing_run_is_refused_unless_resumed_or_overwritten(data_dir, tmp_path, capsys):
    first = run(data_dir, tmp_path / "run", "--task", "sst", "--epochs", "1")
    before = (tmp_path / "run" / "best.pt").read_bytes()
    with pytest.raises(SystemExit, match=r"already holds a run .*--resume .*--overwrite"):
        run(data_dir, tmp_path / "run", "--task", "sst", "--epochs", "1", "--seed", "5")
    assert (tmp_path / "run" / "best.pt").read_bytes() == before  # untouched
    again = run(data_dir, tmp_path / "run", "--task", "sst", "--epochs", "1", "--seed", "5", "--overwrite")
    assert again["epochs"] != first["epochs"]
    # A folder with no checkpoint.pt cannot be resumed, so the message does not offer it; and
    # --overwrite of an ensemble's folder leaves no ensemble.json behind for the report to show.
    (tmp_path / "run" / "checkpoint.pt").unlink()
    (tmp_path / "run" / "ensemble.json").write_text("{}")
    with pytest.raises(SystemExit) as refused:
        run(data_dir, tmp_path / "run", "--task", "sst", "--epochs", "1")
    assert "replace it with --overwrite" in str(refused.value) and "--resume" not in str(refused.value)
    run(data_dir, tmp_path / "run", "--task", "sst", "--epochs", "1", "--overwrite")
    assert not (tmp_path / "run" / "ensemble.json").exists()


def test_a_second_train_py_on_the_same_folder_refuses_while_the_first_runs(data_dir, tmp_path):
    out = tmp_path / "run"
    argv = [sys.executable, "train.py", "--model", str(TINY), "--data-dir", str(data_dir), "--out", str(out)]
    argv += ["--task", "sst", "--epochs", "1", "--steps-per-epoch", "100000", "--log-every", "1", "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    first = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in first.stdout:
            if line.startswith("epoch 1/1"):  # in its training loop
                break
        second = subprocess.run(
            [*argv, "--overwrite", "--seed", "3", "--steps-per-epoch", "3"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )  # (the timeout only bounds a second run that was not refused)
        assert second.returncode == 1, second.stdout + second.stderr
        assert f"error: {out} is in use: process {first.pid} on " in second.stderr and "Traceback" not in second.stderr
        first.send_signal(signal.SIGINT)  # Ctrl-C: the first saves its checkpoint and releases the folder
        first.communicate(timeout=120)
    finally:
        first.kill()
    assert first.returncode == 130 and (out / "checkpoint.pt").is_file() and (out / "tokenizer").is_dir()
    assert not (out / ".lock").exists()


def test_planted_folder_links_are_replaced_not_written_through(data_dir, tmp_path):
    out, elsewhere = tmp_path / "run", tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious.csv").write_text("keep\n")
    out.mkdir()
    (out / "tokenizer").symlink_to(elsewhere)
    run(data_dir, out, "--task", "sst", "--epochs", "1")  # train.py copies the vocabulary into tokenizer/
    assert (out / "tokenizer" / "vocab.txt").is_file() and not (out / "tokenizer").is_symlink()
    shutil.rmtree(out / "report")
    (out / "report").symlink_to(elsewhere)
    report.main([str(out)])  # report.py writes the run's page into report/
    assert (out / "report" / "index.html").is_file() and not (out / "report").is_symlink()
    listing = sorted(p.name for p in (out / "predictions").iterdir())
    shutil.rmtree(out / "predictions")
    (out / "predictions").symlink_to(elsewhere)
    run(data_dir, out, "--task", "sst", "--epochs", "1", "--overwrite")  # not a traceback: the link goes
    assert sorted(p.name for p in (out / "predictions").iterdir()) == listing
    assert sorted(p.name for p in elsewhere.iterdir()) == ["precious.csv"]  # nothing written there, nothing lost


def test_a_batch_smaller_than_the_processes_is_refused(monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")  # as torchrun --nproc_per_node 2 sets it (a run hung for ever)
    for flags in (["--batch-size", "1"], ["--sst-batch-size", "1"]):
        with pytest.raises(SystemExit):
            train.parse_args(flags)
        assert "a batch size of 1 is less than the 2 processes" in capsys.readouterr().err
    assert train.parse_args(["--batch-size", "2"]).batch_size == 2


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--eval-batch-size", "0"], "--eval-batch-size must be at least 1"),
        # SMART's settings before any data is read (they were errors at the first step)
        (["--smart", "1", "--smart-steps", "-1"], "--smart-steps must be at least 0"),
        (["--smart", "1", "--smart-eta", "0"], "--smart-eta and --smart-eps must be > 0"),
        (["--smart", "1", "--smart-eps", "0"], "--smart-eta and --smart-eps must be > 0"),
        (["--smart", "1", "--smart-sigma", "-1"], "--smart-sigma must be a number >= 0"),
        (["--smart=-1"], "--smart must be a number >= 0"),  # (it turned SMART off without a word)
        (["--smart", "inf"], "--smart must be a number >= 0, got inf"),
        (["--weight-decay", "nan"], "--weight-decay must be a number >= 0"),
        # flags that did nothing with the others, or hung, or failed at the first step
        (["--task", "sst", "--pcgrad"], "--pcgrad operates on the tasks' shared encoder gradients"),
        (["--pcgrad", "--schedule", "summed", "--freeze-encoder"], "it needs --task all, unfrozen"),
        (["--task", "sst", "--smart", "5", "--smart-tasks", "para"], "--task sst trains none of them"),
        (["--task", "para", "--share-pair-heads", "--head-layers", "2"], "--share-pair-heads shares the para and sts"),
        (["--bi-head", "concat"], "--bi-head is the head of a bi-encoded pair"),
        (["--pair-encoding", "bi", "--task", "sst", "--para-bi-head", "concat"], "--para-bi-head is the head of"),
        (["--para-encoding", "bi", "--sts-bi-head", "concat"], "--sts-bi-head is the head of a bi-encoded pair"),
        (["--max-length", "4"], "--max-length must be at least 8"),
        (["--lr", "nan"], "--lr must be a number >= 0"),
        (["--lr=-1e-3"], "--lr must be a number >= 0"),
        (["--dropout", "1"], "--dropout must lie in [0, 1)"),
        (["--sts-dropout", "-0.1"], "--sts-dropout must lie in [0, 1)"),
        (["--sst-batch-size", "0"], "--sst-batch-size must be at least 1"),
        (["--eval-subset", "-1"], "--eval-subset must be at least 0"),
        (["--warmup", "1.5"], "--warmup is a fraction"),
        (["--num-classes", "1"], "--num-classes must be at least 2"),
        (["--grad-accum", "0"], "--grad-accum must be at least 1"),
        (["--lr-step-epochs", "0"], "--lr-step-epochs must be at least 1"),
        (["--lr-gamma", "0"], "--lr-gamma must be a number > 0"),
        (["--pcgrad", "--schedule", "annealed"], "use --schedule summed or cycled-summed"),
    ],
)
def test_every_flag_is_checked_before_work_starts(flags, message, capsys):
    with pytest.raises(SystemExit):
        train.parse_args(flags)
    err = capsys.readouterr().err
    assert message in err
    assert len(err.splitlines()) == 1  # the error alone (argparse's usage listed the 80-odd flags first)


def test_resume_refuses_changed_settings_and_extends_epochs(data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    run(data_dir, out, "--task", "sst", "--epochs", "1")
    with pytest.raises(SystemExit):
        train.parse_args(["--resume", str(out), "--lr", "5e-5", "--batch-size", "4"])
    assert "cannot change --batch-size, --lr" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="is finished"):
        train.parse_args(["--resume", str(out)])
    longer = train.train(train.parse_args(["--resume", str(out), "--epochs", "2"]))
    assert [e["epoch"] for e in longer["epochs"]] == [1, 2]


def test_resume_stops_when_a_data_file_changed(data_dir, tmp_path, monkeypatch):
    data = tmp_path / "data"
    make_course_data(data)
    with monkeypatch.context() as m:
        interrupt_at(m, 3, "sigint")
        assert run(data, tmp_path / "run", "--task", "sst") is None
    path = data / TASKS["sst"].files["train"]
    path.write_text(path.read_text().replace("the", "a"))
    with pytest.raises(SystemExit, match=r"ids-sst-train\.csv changed since the run started"):
        train.train(train.parse_args(["--resume", str(tmp_path / "run")]))


def test_ctrl_c_exits_130_after_saving(data_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    argv = ["--model", str(TINY), "--data-dir", str(data_dir), "--out", str(out), "--task", "sst"]
    monkeypatch.setattr(sys, "argv", ["train.py", *argv, "--epochs", "1", "--steps-per-epoch", "6"])
    interrupt_at(monkeypatch, 2, "sigint")
    with pytest.raises(SystemExit) as stop:
        train.main()
    assert stop.value.code == 130 and (out / "checkpoint.pt").is_file()


def test_test_files_named_or_declined(data_dir, tmp_path, capsys):
    with pytest.raises(data.DataError, match="--sst-test .*nope.csv: no such file"):
        run(data_dir, tmp_path / "a", "--task", "sst", "--sst-test", str(tmp_path / "nope.csv"))
    run(data_dir, tmp_path / "b", "--task", "sst", "--sst-test", "none", "--epochs", "1")
    assert not (tmp_path / "b" / "predictions" / "sst-test-output.csv").exists()
    assert (tmp_path / "b" / "predictions" / "sst-dev-output.csv").exists()
    assert "has 48 rows; the course file has 8544" in capsys.readouterr().out  # toy files are not the course's


def test_num_classes_flag_sets_the_sentiment_head(data_dir, tmp_path):
    run(data_dir, tmp_path / "run", "--task", "sst", "--num-classes", "7", "--epochs", "1")
    assert best_state(tmp_path / "run")["heads.sst.out.weight"].shape[0] == 7


def write_synth(path, sources):
    lines = [
        json.dumps({"id": f"{src}-syn{k}", "source_id": src, "label": label, "text": text, "model": "test"})
        for src, label, text in sources
        for k in range(2)
    ]
    path.write_text("\n".join(lines) + "\n")


def sst_rows(data_dir, split):
    return data.read_examples(data_dir / TASKS["sst"].files[split], "sst")


def test_sst_synth_joins_sentiment_training_only(data_dir, tmp_path):
    synth = tmp_path / "synth.jsonl"
    write_synth(
        synth, [(ex.id, ex.label, f"a film number {i} .") for i, ex in enumerate(sst_rows(data_dir, "train")[:10])]
    )
    plain = train.setup(
        train.parse_args(["--model", str(TINY), "--data-dir", str(data_dir), "--out", str(tmp_path / "a")])
    )
    argv = ["--model", str(TINY), "--data-dir", str(data_dir), "--out", str(tmp_path / "b"), "--sst-synth", str(synth)]
    mixed = train.setup(train.parse_args(argv))
    ids = mixed.splits["train"]["sst"].example_ids
    assert len(ids) == len(plain.splits["train"]["sst"].example_ids) + 20 and "strain3-syn1" in ids
    for split in ("dev", "test"):  # never in dev or test
        assert list(mixed.splits[split]["sst"].example_ids) == list(plain.splits[split]["sst"].example_ids)
    # annealed sampling keeps the real sizes, so the task mix is the same as without them
    assert mixed.schedule.sizes == plain.schedule.sizes
    assert [mixed.schedule.tasks_for_step(0, s) for s in range(30)] == [
        plain.schedule.tasks_for_step(0, s) for s in range(30)
    ]
    metrics = run(data_dir, tmp_path / "c", "--sst-synth", str(synth), "--epochs", "1")
    assert metrics["sst_synth"] == {"file": str(synth), "examples": 20, "sources": 10}


def test_sst_synth_rejects_ids_and_labels_that_do_not_fit(data_dir, tmp_path):
    synth = tmp_path / "synth.jsonl"
    write_synth(synth, [("x", 7, "a fine film .")])
    with pytest.raises(data.DataError, match="x-syn0 has label 7; sentiment has 5 classes"):
        run(data_dir, tmp_path / "a", "--task", "sst", "--sst-synth", str(synth))
    train_row, dev_row, test_row = (sst_rows(data_dir, split)[0] for split in ("train", "dev", "test"))
    other = sst_rows(data_dir, "train")[1]
    wrong_label = (other.label + 1) % 5
    cases = [
        ((dev_row.id, dev_row.label), f"source '{dev_row.id}' is a row of the dev file .*leak dev into training"),
        ((test_row.id, 0), f"source '{test_row.id}' is a row of the test file"),
        (("orphan", 1), "source 'orphan' is not a row of the training file"),
        ((other.id, wrong_label), f"{other.id}-syn0 has label {wrong_label}, its source {other.id} has {other.label}"),
    ]
    for (source, label), message in cases:  # after two good rows, so the error names line 3
        write_synth(synth, [(train_row.id, train_row.label, "a fine one ."), (source, label, "a paraphrase .")])
        with pytest.raises(data.DataError, match=rf"^{synth}:3: {message}"):
            run(data_dir, tmp_path / "b", "--task", "sst", "--sst-synth", str(synth), "--overwrite")
    assert not (tmp_path / "b" / ".lock").exists()  # an error releases the run folder


def test_a_run_writes_its_report_unless_told_not_to(data_dir, tmp_path, capsys):
    run(data_dir, tmp_path / "a", "--task", "sts", "--epochs", "1")
    assert (tmp_path / "a" / "report" / "index.html").is_file()
    assert f"report: {tmp_path / 'a' / 'report' / 'index.html'}" in capsys.readouterr().out
    run(data_dir, tmp_path / "b", "--task", "sts", "--epochs", "1", "--no-report")
    assert not (tmp_path / "b" / "report").exists()


def test_max_length_is_cut_to_the_model_positions(data_dir, tmp_path, capsys):
    args = train.parse_args(["--model", str(TINY), "--data-dir", str(data_dir), "--out", str(tmp_path / "a")])
    assert args.max_length == 128
    assert train.setup(args).args.max_length == 32  # tiny_bert has 32 positions
    assert "positions: cut at 32" in capsys.readouterr().out


def test_max_length_follows_a_model_with_more_than_512_positions(data_dir, tmp_path, capsys):
    """--max-length is the model's to bound, not BERT's 512: a model with 600 positions takes 600."""
    config = BertConfig.from_dict({**json.loads((TINY / "config.json").read_text()), "max_position_embeddings": 600})
    BertModel(config).save_pretrained(tmp_path / "long", vocab_file=TINY / "vocab.txt")
    flags = ["--data-dir", str(data_dir), "--task", "sts", "--epochs", "1", "--steps-per-epoch", "1"]
    args = train.parse_args(
        [*flags, "--model", str(tmp_path / "long"), "--out", str(tmp_path / "a"), "--max-length", "600"]
    )
    assert train.setup(args).args.max_length == 600
    args = train.parse_args([*flags, "--model", str(TINY), "--out", str(tmp_path / "b"), "--max-length", "600"])
    assert train.setup(args).args.max_length == 32  # tiny_bert's 32
    assert "--max-length 600 is more than" in capsys.readouterr().out


@pytest.mark.parametrize(
    "flags,field,value",
    [
        (["--sst-loss", "oll", "--oll-alpha", "2"], "oll_alpha", 2.0),
        (["--sst-loss", "dual"], "sst_loss", "dual"),
        (["--sts-encoding", "bi"], "sts_encoding", "bi"),
        (["--para-encoding", "bi", "--para-bi-head", "concat"], "para_bi_head", "concat"),
        (["--sts-encoding", "bi", "--bi-projection"], "bi_projection", True),
        (["--pooling", "pooler"], "pooling", "pooler"),
        (["--head-layers", "2", "--head-activation", "gelu"], "head_activation", "gelu"),
        (["--sst-dropout", "0"], "dropout", {"sst": 0.0, "para": 0.1, "sts": 0.1}),
    ],
)
def test_head_flags_reach_the_model(flags, field, value, tmp_path):
    args = train.parse_args(["--model", str(TINY), "--out", str(tmp_path), *flags])
    model = train.build_model(args, TINY, ["sst", "para", "sts"], 5)
    assert getattr(model.config, field) == value


def test_schedule_flags_reach_the_loop(data_dir, tmp_path):
    argv = ["--model", str(TINY), "--data-dir", str(data_dir), "--epochs", "3"]
    staggered = train.setup(train.parse_args([*argv, "--out", str(tmp_path / "a"), "--schedule", "staggered"]))
    assert staggered.args.steps_per_epoch is None  # a data-defined epoch
    assert staggered.schedule.tasks_for_step(1, 0) == ["para"] and staggered.schedule.tasks_for_step(2, 0) == ["sst"]
    once = ["--stagger-epochs", "1", "--schedule", "staggered", "--out", str(tmp_path / "b")]
    assert train.setup(train.parse_args([*argv, *once])).schedule.tasks_for_step(1, 0) == ["sst"]


def test_adam_flags_reach_the_optimizer(data_dir, tmp_path):
    argv = ["--model", str(TINY), "--data-dir", str(data_dir), "--out", str(tmp_path / "a")]
    run_ = train.setup(train.parse_args([*argv, "--adam-eps", "1e-6", "--adam-betas", "0.8", "0.98"]))
    group = run_.optimizer.param_groups[0]
    assert group["eps"] == 1e-6 and tuple(group["betas"]) == (0.8, 0.98)


def test_early_stop_per_task_bests_and_plain_mean(data_dir, tmp_path):
    # lr 0: the dev scores never improve after epoch 1, so patience 1 stops after epoch 2 of 4.
    flat = ["--lr", "0", "--warmup", "0", "--epochs", "4"]
    stopped = run(data_dir, tmp_path / "a", *flat, "--early-stop", "1")
    assert [e["epoch"] for e in stopped["epochs"]] == [1, 2]
    # The early stop finished the run: --resume says so (it once trained epoch 3 and wrote over
    # metrics.json), and goes on when --early-stop is raised.
    with pytest.raises(SystemExit, match=r"is finished \(--early-stop 1: no better dev score since epoch 1\)"):
        train.parse_args(["--resume", str(tmp_path / "a")])
    resumed = train.train(train.parse_args(["--resume", str(tmp_path / "a"), "--early-stop", "0"]))
    assert [e["epoch"] for e in resumed["epochs"]] == [1, 2, 3, 4]
    assert len(run(data_dir, tmp_path / "b", *flat)["epochs"]) == 4  # without the flag: every epoch
    metrics = run(data_dir, tmp_path / "c", "--epochs", "3")
    assert metrics["plain_mean"] == pytest.approx(sum(metrics["dev"].values()) / 3)
    for task in ("sst", "para", "sts"):
        scores = [e["dev"][task] for e in metrics["epochs"]]
        best_epoch = scores.index(max(scores)) + 1
        assert metrics["best_per_task"][task]["epoch"] == best_epoch
        assert torch.load(tmp_path / "c" / f"best-{task}.pt", weights_only=True)["epoch"] == best_epoch


def test_a_task_best_that_became_best_pt_leaves_no_stale_predictions(tmp_path):
    # Resumed with more epochs, sst's best moved to the new best epoch: best-sst/predictions/ from
    # the earlier finish (epoch 2's) would still be taken by ensemble.py --task-bests.
    (tmp_path / "best-sst" / "predictions").mkdir(parents=True)
    (tmp_path / "best-sst" / "predictions" / "sst-dev-raw.csv").write_text("id\tp0\n")
    (tmp_path / "best-para" / "predictions").mkdir(parents=True)
    state = {"best": {"epoch": 3}, "best_task": {"sst": {"epoch": 3}}}
    train.write_task_bests(SimpleNamespace(state=state, out=tmp_path, log=print))
    assert not (tmp_path / "best-sst").exists() and (tmp_path / "best-para").is_dir()  # para's is not in question


def test_an_early_stop_interrupted_in_its_final_predictions_resumes_to_them(data_dir, tmp_path, monkeypatch):
    # It trained another epoch on --resume (epochs [1, 2, 3]) instead of finishing as it would have.
    flat = ["--lr", "0", "--warmup", "0", "--epochs", "4", "--early-stop", "1"]

    def interrupted(run):  # Ctrl-C (or a kill) while the best model predicts
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "finish", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(data_dir, tmp_path / "run", *flat)
    monkeypatch.undo()
    resumed = train.train(train.parse_args(["--resume", str(tmp_path / "run")]))
    assert [e["epoch"] for e in resumed["epochs"]] == [1, 2]


def test_resume_accepts_the_auto_it_was_started_with(data_dir, tmp_path):
    run(data_dir, tmp_path / "run", "--task", "sst", "--epochs", "1", "--amp", "auto")  # saved resolved ("off" here)
    saved = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["args"]["amp"]
    args = train.parse_args(["--resume", str(tmp_path / "run"), "--amp", "auto", "--epochs", "2"])
    assert args.amp == saved != "auto"  # the run's own (it was refused: "cannot change --amp")


def model_copy(folder, edit_config=None, edit_weights=None, tokenizer_config=None):
    """tests' tiny BERT in `folder`, its config and weights edited."""
    import hub

    folder.mkdir(parents=True)
    config = json.loads((TINY / "config.json").read_text())
    weights = dict(hub.load_safetensors(TINY / "model.safetensors"))
    (edit_config or (lambda c: None))(config)
    (edit_weights or (lambda w: None))(weights)
    (folder / "config.json").write_text(json.dumps(config))
    hub.save_safetensors({k: v.clone() for k, v in weights.items()}, folder / "model.safetensors")
    shutil.copy(TINY / "vocab.txt", folder / "vocab.txt")
    if tokenizer_config is not None:
        (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    return folder


def test_a_model_with_one_token_type_refuses_cross_encoded_pairs(data_dir, tmp_path):
    def one_type(w):
        w["embeddings.token_type_embeddings.weight"] = w["embeddings.token_type_embeddings.weight"][:1]

    model = model_copy(tmp_path / "one-type", lambda c: c.update(type_vocab_size=1), one_type)
    with pytest.raises(SystemExit, match="type_vocab_size 1, but cross-encoded para needs 2"):  # (an IndexError)
        run(data_dir, tmp_path / "run", "--model", str(model))
    assert run(data_dir, tmp_path / "bi", "--model", str(model), "--pair-encoding", "bi")["dev"]


def test_overwrite_leaves_no_tokenizer_config_of_the_run_before(data_dir, tmp_path):
    cased = model_copy(tmp_path / "cased", tokenizer_config={"do_lower_case": False})
    run(data_dir, tmp_path / "run", "--task", "sst", "--epochs", "1", "--model", str(cased))
    assert (tmp_path / "run" / "tokenizer" / "tokenizer_config.json").is_file()
    run(data_dir, tmp_path / "run", "--task", "sst", "--epochs", "1", "--overwrite")  # TINY: none
    assert not (tmp_path / "run" / "tokenizer" / "tokenizer_config.json").exists()  # predict.py read it


def test_bad_model_checkpoint_and_labels_are_one_line_errors(data_dir, tmp_path, monkeypatch):
    def main_error(*argv):
        monkeypatch.setattr(sys, "argv", ["train.py", "--data-dir", str(data_dir), "--task", "sst", *argv])
        with pytest.raises(SystemExit) as stop:
            train.main()
        message = str(stop.value.code)
        assert message.startswith("error: ") and "\n" not in message and "weights_only=False" not in message
        return message

    (tmp_path / "empty").mkdir()
    assert "config.json" in main_error("--model", str(tmp_path / "empty"), "--out", str(tmp_path / "a"))
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint at all")
    argv = ["--model", str(TINY), "--init-from", str(tmp_path / "garbage.pt"), "--out", str(tmp_path / "b")]
    assert "garbage.pt" in main_error(*argv)
    bad = tmp_path / "seven.csv"  # a 7 among SST-5 labels: classes 5 and 6 never occur
    write_course_file(
        bad, ["id", "sentence", "sentiment"], [(f"x{i}", "a film .", i % 5) for i in range(10)] + [("y", "odd .", 7)]
    )
    assert "seven.csv:12: sentiment 7 implies 8 classes" in main_error(
        "--model", str(TINY), "--sst-train", str(bad), "--out", str(tmp_path / "c")
    )


def test_grad_accum_gives_the_step_of_the_whole_batch(data_dir, tmp_path, monkeypatch):
    # Dropout off, so a batch of 8 as micro-batches of 3, 3 and 2 must give the same steps as
    # the batch at once: same losses, same weights, up to float rounding.
    sizes, collate = [], data.collate

    def record(d, indices, swap=None):  # the sizes of the training batches (evaluation runs without grad)
        if torch.is_grad_enabled():
            sizes.append(len(indices))
        return collate(d, indices, swap)

    monkeypatch.setattr(data, "collate", record)
    # fp32 on a GPU too: with TF32 (loop.use_tf32) the two runs' weights, equal to 1e-7, can round
    # to 10-bit mantissas differently, and the comparison is of accumulation, not of TF32.
    monkeypatch.setattr(loop, "use_tf32", lambda device: None)
    plain = ["--epochs", "1", "--dropout", "0", "--encoder-dropout", "0", "--no-report"]
    whole = run(data_dir, tmp_path / "whole", *plain)
    assert max(sizes) == 8
    sizes.clear()
    split = run(data_dir, tmp_path / "split", *plain, "--grad-accum", "3")
    assert max(sizes) == 3  # the model never saw more than a micro-batch at once
    for task, loss in whole["epochs"][0]["train_loss"].items():
        assert split["epochs"][0]["train_loss"][task] == pytest.approx(loss, rel=1e-5)
    a, b = best_state(tmp_path / "whole"), best_state(tmp_path / "split")
    for name in a:
        if name.endswith("attn.qkv.bias"):
            # The key bias has no true gradient (softmax ignores a shift), so Adam turns rounding
            # noise into steps of up to lr: the query and value thirds must agree, the key third
            # only within 6 steps of lr 1e-3.
            q, k, v = a[name].chunk(3)
            q2, k2, v2 = b[name].chunk(3)
            assert torch.allclose(q, q2, atol=1e-5) and torch.allclose(v, v2, atol=1e-5)
            assert torch.allclose(k, k2, atol=6e-3)
        else:
            assert torch.allclose(a[name], b[name], atol=1e-5), name


def test_lr_step_schedule_multiplies_by_gamma_each_k_epochs(data_dir, tmp_path, monkeypatch):
    import adamw

    lrs, step = [], adamw.AdamW.step
    monkeypatch.setattr(adamw.AdamW, "step", lambda self, *a: lrs.append(self.param_groups[0]["lr"]) or step(self, *a))
    flags = ["--lr-schedule", "step", "--lr-step-epochs", "2", "--lr-gamma", "0.5", "--warmup", "0", "--epochs", "5"]
    run(data_dir, tmp_path / "run", *flags, "--no-report")
    per_epoch = [1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4]
    assert lrs == pytest.approx([lr for lr in per_epoch for _ in range(6)])  # 6 steps per epoch


def test_training_accuracy_is_the_accuracy_on_the_batches_seen(data_dir, tmp_path):
    # lr 0 and no dropout: the model never changes, so an epoch (one pass over the 48 sst training
    # rows: 6 batches of 8) must score exactly the model's accuracy on the training set.
    argv = ["--model", str(TINY), "--data-dir", str(data_dir), "--task", "sst", "--epochs", "1", "--lr", "0"]
    argv += ["--dropout", "0", "--encoder-dropout", "0", "--batch-size", "8", "--device", DEVICE.type, "--amp", "off"]
    argv += ["--no-report"]
    metrics = train.train(train.parse_args([*argv, "--out", str(tmp_path / "run")]))
    assert metrics["examples_seen"] == {"sst": 48}
    run_ = train.setup(train.parse_args([*argv, "--out", str(tmp_path / "again")]))
    run_.model.load_state_dict(best_state(tmp_path / "run"))
    expected, _ = train.evaluate(run_.model, {"sst": run_.splits["train"]["sst"]}, run_.args, run_.device)
    assert metrics["epochs"][0]["train_acc"] == {"sst": pytest.approx(expected["sst"])}
    both = run(data_dir, tmp_path / "all", "--no-report")
    assert all(set(e["train_acc"]) == {"sst", "para"} for e in both["epochs"])  # no accuracy for sts


def test_temporary_files_of_a_killed_checkpoint_write_are_removed_on_the_next_start(data_dir, tmp_path, capsys):
    # kill -9 while checkpoint.pt or best.pt was written left its temporary file (as big as the
    # model and its Adam moments: 1.3 GB for bert-base) in the run folder for good, once per kill.
    out = tmp_path / "run"
    run(data_dir, out, "--task", "sst", "--epochs", "1")
    killed = [out / ".checkpoint.pt.k1ll3d.tmp", out / ".best-sst.pt.x7y8z9.tmp"]
    for path in [*killed, out / "notes.tmp"]:
        path.write_bytes(b"half a checkpoint")
    train.train(train.parse_args(["--resume", str(out), "--epochs", "2"]))
    assert not any(path.exists() for path in killed)
    assert (out / "notes.tmp").is_file()  # not atomic_write's: not ours to remove
    assert f"removed {killed[0]}" in capsys.readouterr().out

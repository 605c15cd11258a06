"""cli.py: the --help formatter, the numeric flag checks, and an entry point's main turning a full GPU into one line."""

import argparse

import pytest
import torch

import cli


def test_out_of_gpu_memory_is_one_line_with_what_to_try():
    def first_step():
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.50 GiB")

    with pytest.raises(SystemExit) as stop:
        cli.run_command(first_step)
    message = str(stop.value.code)
    assert message.startswith("error: out of GPU memory") and "\n" not in message
    assert "--grad-accum" in message and "--batch-size" in message


def test_ctrl_c_outside_the_loop_exits_130_in_one_line(capsys):
    def tokenizing():  # mlm.py reading a large --text when Ctrl-C comes: it once printed a traceback
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as stop:
        cli.run_command(tokenizing)
    assert stop.value.code == 130
    assert capsys.readouterr().err.strip() == "stopped (Ctrl-C); a run that wrote checkpoint.pt goes on with --resume"


def test_help_prints_a_default_only_where_it_says_something():
    p = argparse.ArgumentParser(formatter_class=cli.DefaultsHelpFormatter)
    p.add_argument("--lr", type=float, default=1e-4, help="peak learning rate")
    p.add_argument("--out", default=None, help="run folder")
    p.add_argument("--sst-batch-size", type=int, default=None, help="sst batch size (default --batch-size)")
    p.add_argument("--epochs", type=int, default=3, help="epochs (default: three)")
    p.add_argument("--ema", action="store_true", help="keep a moving average")
    p.add_argument("--task-text", action=argparse.BooleanOptionalAction, default=True, help="read the task text")
    text = " ".join(p.format_help().split())
    assert "peak learning rate (default: 0.0001)" in text
    assert "run folder --sst" in text  # nothing after a None default
    assert "(default --batch-size) --epochs" in text and text.count("(default: three)") == 1
    assert "keep a moving average --task-text" in text  # a switch, off unless given
    assert "read the task text (default: True)" in text  # --x/--no-x: which one stands says something
    assert "(default: None)" not in text and "(default: False)" not in text


@pytest.mark.parametrize("module, lr", [("train", "0.0001"), ("mlm", "5e-05")])
def test_entry_points_help_never_prints_default_none(module, lr):
    text = " ".join(__import__(module).get_parser().format_help().split())
    assert "(default: None)" not in text and "(default: False)" not in text
    assert f"(default: {lr})" in text  # --lr: a default that says something is still printed


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--epochs", "0"], "--epochs must be at least 1, got 0"),
        (["--lr", "nan"], "--lr must be a number >= 0, got nan"),
        (["--clip", "-1"], "--clip must be a number >= 0, got -1.0"),
        (["--warmup", "1.5"], "--warmup is a fraction of all steps, in [0, 1]; got 1.5"),
    ],
)
def test_check_numbers_names_the_flag(flags, message, capsys):
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--steps", type=int, default=None)  # None: not given, never below a bound
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--clip", type=float, default=1.0)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--warmup", type=float, default=0.0)
    bounds = {"epochs": 1, "steps": 1}
    cli.check_numbers(p, p.parse_args([]), bounds, non_negative=["lr", "clip"])  # the defaults pass
    with pytest.raises(SystemExit):
        cli.check_numbers(p, p.parse_args(flags), bounds, non_negative=["lr", "clip"])
    assert message in capsys.readouterr().err

"""README.md and docs/*.md: every command they show names a real tool, subcommand, flag and make target,
so a page that moved (or a flag that was renamed) never leaves a reader a command that cannot run."""

import contextlib
import io
import re
import runpy
import sys

import pytest
from conftest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TOOLS = ["train", "mlm", "predict", "export", "synth", "ensemble", "report", "reproduce", "bench"]
TOOLS += ["fetch_data", "gpu_check"]
SUBCOMMANDS = {"synth": ("paraphrase", "label")}


def code_of(text):
    """The page's commands: lines of fenced or indented code blocks (a line ending in \\ joined
    to the next) and inline code spans."""
    text = re.sub(r"\\\n\s*", " ", text)
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)
    text = re.sub(r"```[a-z]*\n.*?```", "", text, flags=re.S)
    lines = [line for block in blocks for line in block.splitlines()]
    lines += [line[4:] for line in text.splitlines() if line.startswith("    ") and not line.lstrip().startswith("-")]
    return lines + re.findall(r"`([^`\n]+)`", text)


def uses(code):
    """(tool, subcommand or None, [flags]) for each `X.py ...` in a piece of code, up to its end,
    a comment, a pipe, `&&`, `;` or the next tool."""
    found = []
    pattern = r"\b(" + "|".join(TOOLS) + r")\.py\b"
    parts = re.split(pattern, code)
    for tool, rest in zip(parts[1::2], parts[2::2]):
        rest = re.split(r"\s#|\||&&|;", rest)[0]
        words = rest.split()
        sub = words[0] if tool in SUBCOMMANDS and words and words[0] in SUBCOMMANDS[tool] else None
        found.append((tool, sub, re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", rest)))
    return found


def help_text(tool, sub):
    """What `python tool.py [sub] --help` prints (run in this process: one torch import)."""
    argv, out = sys.argv, io.StringIO()
    sys.argv = [f"{tool}.py", *([sub] if sub else []), "--help"]
    try:
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
            runpy.run_path(str(ROOT / f"{tool}.py"), run_name="__main__")
    finally:
        sys.argv = argv
    return out.getvalue()


def help_flags(tool, sub):
    """The flags `python tool.py [sub] --help` lists."""
    return set(re.findall(r"--[a-z][a-z0-9-]*", help_text(tool, sub)))


def test_every_command_in_the_docs_names_real_flags():
    helps, checked, wrong = {}, 0, []
    for page in PAGES:
        for code in code_of(page.read_text()):
            for tool, sub, flags in uses(code):
                if (tool, sub) not in helps:
                    helps[tool, sub] = help_flags(tool, sub)
                checked += len(flags)
                wrong += [f"{page.name}: {tool}.py {flag}" for flag in flags if flag not in helps[tool, sub]]
    assert not wrong
    assert checked > 80  # the commands were found: train.py, mlm.py, ensemble.py, reproduce.py ...
    assert {tool for tool, _ in helps} >= {"train", "mlm", "synth", "ensemble", "reproduce", "bench", "gpu_check"}
    assert ("synth", "paraphrase") in helps and ("synth", "label") in helps


@pytest.mark.parametrize(
    "tool, sub",
    [(t, None) for t in TOOLS if t not in SUBCOMMANDS] + [(t, s) for t in SUBCOMMANDS for s in SUBCOMMANDS[t]],
)
def test_help_never_says_default_none(tool, sub):
    """A flag that is off, or whose help says what stands in, shows no "(default: None)", and a
    switch no "(default: False)" (cli.DefaultsHelpFormatter); every other default is printed."""
    text = help_text(tool, sub)
    assert "--" in text and "default: None" not in text and "default: False" not in text


def test_every_make_target_in_the_docs_exists():
    targets = set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), flags=re.M))
    named = {
        t for page in PAGES for code in code_of(page.read_text()) for t in re.findall(r"\bmake ([a-z][a-z-]*)", code)
    }
    assert named >= {"train", "test", "reproduce", "gpu-check"}
    assert named <= targets, named - targets


def test_readme_is_a_landing_page_with_the_test_command():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    assert "make test" in readme and "## Tests" in readme  # CI (.ci/run) runs the README's test command
    for link in re.findall(r"\]\((docs/[^)]+)\)", readme):
        path, _, anchor = link.partition("#")
        assert (ROOT / path).exists(), link
        if anchor:  # a heading of that page, as GitHub makes its anchors
            headings = re.findall(r"^#+ (.+)$", (ROOT / path).read_text(), flags=re.M)
            anchors = {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}
            assert anchor in anchors, link
    for page in PAGES[1:]:
        for link in re.findall(r"\]\(([^)#:]+)\)", page.read_text()):
            assert (page.parent / link).exists(), f"{page.name}: {link}"

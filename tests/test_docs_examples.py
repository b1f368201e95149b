"""Every shell and Python example in README.md and docs/*.md runs, and the manual stays tidy.

The conventions (also in docs/getting-started.md, "About the examples in these pages"):

- Fenced blocks tagged ```sh, ```console or ```bash are shell examples and ```python blocks are
  Python examples; every other tag (```text, ```prototxt, ```json, ```csv, none) is not run.
- One pytest case per block, with the id FILE:LINE of its opening fence. The blocks of one page
  run in order in one working folder of their own (a later block may use what an earlier one
  wrote), a temporary copy of what the examples read: prototxt/, examples/, benchmarks/ and
  tests/malformed/. Nothing is written into the repository.
- Shell blocks run with bash under `set -euo pipefail`; Python blocks with this Python
  (sys.executable), as a script, in the page's folder.
- `pip install ...` is not run (the package is installed already): a line that is only a pip
  install is dropped, and `pip install X && rest` runs `rest`. A `pytest` command (the test
  suite itself, e.g. the README's second line) is not run from inside the suite either.
- Length: `seqgen train` and `seqgen sweep` get `--iters $SEQGEN_DOC_ITERS` (default 20)
  unless the example gives `--iters` itself; `seqgen sweep` runs at most $SEQGEN_DOC_SEEDS
  seeds (default 1: `--seeds K` is lowered, and added when the example has none, since sweep
  files give their own); `--epochs` is capped at 1 and `--steps` at $SEQGEN_DOC_STEPS
  (default 1000).
- A block that cannot run here (it needs Caffe or torch, a cluster of machines, Ctrl-C)
  is marked on the line before its fence with `<!-- doc-test: skip (the reason) -->` and is
  reported as skipped with that reason.
- A failing block fails its case with its file:line, the text that ran and its output.

Also here: README.md stays a front page (at most 200 lines) and every page in docs/ is in
mkdocs.yml's nav (and every nav entry but the two the integrator writes exists).
"""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
COPIED = ["prototxt", "examples", "benchmarks", "tests/malformed"]

SHELL_TAGS = {"sh", "console", "bash"}
PYTHON_TAGS = {"python"}
ITERS = int(os.environ.get("SEQGEN_DOC_ITERS", "20"))
SEEDS = int(os.environ.get("SEQGEN_DOC_SEEDS", "1"))
STEPS = int(os.environ.get("SEQGEN_DOC_STEPS", "1000"))
EPOCHS = 1
TIMEOUT = 600

FENCE = re.compile(r"^(\s*)```\s*([\w+-]*)\s*$")
SKIP = re.compile(r"<!--\s*doc-test:\s*skip\s*\((.+)\)\s*-->")


def blocks(page):
    """(line, tag, text, skip reason or None) of every fenced block of a page."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, tag, start = m.group(1), m.group(2).lower(), i
        body = []
        i += 1
        while i < len(lines) and not re.match(r"^\s*```\s*$", lines[i]):
            line = lines[i]
            body.append(line[len(indent):] if line.startswith(indent) else line.lstrip())
            i += 1
        i += 1  # the closing fence
        before = lines[start - 1] if start > 0 else ""
        skip = SKIP.search(before)
        found.append((start + 1, tag, "\n".join(body) + "\n", skip.group(1) if skip else None))
    return found


def cases():
    out = []
    for page in PAGES:
        rel = page.relative_to(ROOT).as_posix()
        for line, tag, text, skip in blocks(page):
            if tag in SHELL_TAGS or tag in PYTHON_TAGS:
                kind = "sh" if tag in SHELL_TAGS else "python"
                marks = [pytest.mark.skip(reason=f"{rel}:{line}: {skip}")] if skip else []
                out.append(pytest.param(rel, line, kind, text, id=f"{rel}:{line}", marks=marks))
    return out


# -- rewriting a shell block for the test ---------------------------------------------------

def _cap(command, flag, limit):
    return re.sub(rf"{flag}(\s+|=)(\d+)",
                  lambda m: f"{flag}{m.group(1)}{min(int(m.group(2)), limit)}", command)


def _seqgen_command(command):
    """One simple command (no &&, ;, |): add --iters / cap what makes it long."""
    body, hashmark, comment = command.partition(" #")
    if not re.search(r"\bseqgen\s+(train|sweep|generate)\b", body):
        return command
    sub = re.search(r"\bseqgen\s+(\w+)", body).group(1)
    stripped = body.rstrip()
    tail = body[len(stripped):]
    if sub in ("train", "sweep") and "--iters" not in stripped:
        stripped += f" --iters {ITERS}"
    if sub == "sweep":
        stripped = _cap(stripped, "--seeds", SEEDS)
        if "--seeds" not in stripped:
            stripped += f" --seeds {SEEDS}"
    stripped = _cap(stripped, "--epochs", EPOCHS)
    stripped = _cap(stripped, "--steps", STEPS)
    return stripped + tail + hashmark + comment


def _pip_or_pytest(command):
    return re.match(r"\s*(pip3?|python3? -m pip)\s+install\b|\s*(python3? -m )?pytest\b", command)


def rewrite_shell(text):
    """The block as the test runs it (the rules in this module's docstring)."""
    logical = re.sub(r"\s*\\\n\s*", " ", text)  # join continuation lines
    out = []
    for line in logical.splitlines():
        parts = re.split(r"(\s&&\s|\s\|\|\s|;\s|\s\|\s)", line)
        commands, separators = parts[0::2], parts[1::2]
        kept = []
        for i, command in enumerate(commands):
            if _pip_or_pytest(command) and (i == len(separators) or "&&" in separators[i]):
                continue  # `pip install X && rest` runs rest; a lone pip install goes
            kept.append((separators[i - 1] if i and kept else "", _seqgen_command(command)))
        out.append("".join(sep + command for sep, command in kept).strip())
    return "\n".join(line for line in out if line) + "\n"


# -- running ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """One working folder per page, made on first use and kept for its later blocks."""
    made = {}

    def folder(page):
        if page not in made:
            work = tmp_path_factory.mktemp(re.sub(r"\W", "_", page))
            for name in COPIED:
                if (ROOT / name).exists():
                    shutil.copytree(ROOT / name, work / name,
                                    ignore=shutil.ignore_patterns("runs", "__pycache__"))
            made[page] = work
        return made[page]

    return folder


def _environment():
    env = dict(os.environ)
    env.setdefault("MPLBACKEND", "Agg")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.pop("DASK_SCHEDULER_ADDRESS", None)
    return env


@pytest.mark.parametrize(("page", "line", "kind", "text"), cases())
def test_example_runs(page, line, kind, text, folders):
    work = folders(page)
    if kind == "sh":
        script = "set -euo pipefail\n" + rewrite_shell(text)
        argv = ["bash", "-c", script]
    else:
        script = text
        path = work / f"_doc_example_{line}.py"
        path.write_text(script, encoding="utf-8")
        argv = [sys.executable, path.name]
    done = subprocess.run(argv, cwd=work, env=_environment(), capture_output=True, text=True,
                          timeout=TIMEOUT)
    if done.returncode != 0:
        pytest.fail(f"{page}:{line}: the {kind} example exited {done.returncode}\n"
                    f"--- ran (in {work}) ---\n{script}\n--- stdout ---\n{done.stdout[-4000:]}"
                    f"\n--- stderr ---\n{done.stderr[-4000:]}", pytrace=False)


# -- the rules themselves ---------------------------------------------------------------------

@pytest.mark.parametrize(("given", "runs"), [
    ("pip install . && seqgen train p.prototxt && seqgen generate\n",
     f"seqgen train p.prototxt --iters {ITERS} && seqgen generate\n"),
    ("pip install '.[test]' && pytest\n", "\n"),
    ("pip install 'seqgen[onnx]'\nseqgen info n.prototxt\n", "seqgen info n.prototxt\n"),
    ("seqgen train s.prototxt --iters 2000 --out runs/short\n",
     "seqgen train s.prototxt --iters 2000 --out runs/short\n"),
    ("seqgen sweep s.prototxt --set a=1,2 \\\n    --seeds 3 --out x     # comment\n",
     f"seqgen sweep s.prototxt --set a=1,2 --seeds {min(3, SEEDS)} --out x --iters {ITERS}"
     "     # comment\n"),
    ("seqgen sweep f.json --out r\n",
     f"seqgen sweep f.json --out r --iters {ITERS} --seeds {SEEDS}\n"),
    ("seqgen generate --steps 9000 --seed 1 | head -3\n",
     f"seqgen generate --steps {min(9000, STEPS)} --seed 1 | head -3\n"),
])
def test_rewrite_rules(given, runs):
    assert rewrite_shell(given) == runs


def test_skip_marker_and_fences_are_read(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("a\n<!-- doc-test: skip (needs torch) -->\n```python\nimport torch\n```\n"
                    "- item\n\n  ```sh\n  seqgen info x\n  ```\n```text\nnot run\n```\n")
    assert blocks(page) == [(3, "python", "import torch\n", "needs torch"),
                            (8, "sh", "seqgen info x\n", None), (11, "text", "not run\n", None)]


# -- the manual stays tidy --------------------------------------------------------------------

def nav_pages():
    text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = text.split("\nnav:", 1)[1]
    nav = re.split(r"\n\S", nav, maxsplit=1)[0]  # up to the next top-level key
    return re.findall(r"([\w./-]+\.md)\s*$", nav, re.M)


def test_readme_is_a_front_page():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; move the detail into docs/"
    first = blocks(ROOT / "README.md")[0]
    assert first[1:3] == ("sh", (
        "pip install . && seqgen train prototxt/lstm_short_solver.prototxt && seqgen generate\n"
        "pip install '.[test]' && pytest\n")), "the README's two commands come first, unchanged"


def test_every_docs_page_is_in_the_nav():
    listed = nav_pages()
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    orphans = pages - set(listed)
    assert not orphans, f"pages in docs/ missing from mkdocs.yml's nav: {sorted(orphans)}"
    missing = set(listed) - pages
    assert not missing, f"mkdocs.yml's nav names pages that do not exist: {sorted(missing)}"


def test_readme_links_reach_the_manual():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(((?:docs|examples)/[^)#\s]+)(?:#[^)]*)?\)", text)
    assert links, "the README links its manual"
    missing = {link for link in links if not (ROOT / link).exists()}
    assert not missing, f"README.md links to files that do not exist: {sorted(missing)}"

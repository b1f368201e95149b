"""Faults on a command's outputs (issue 20, parts 1 and 4): seqgen never writes over a file
it did not write, onto its own inputs or into another run; an output that cannot be
written is one line naming it (exit 2 for the place given, 1 for a failure mid-run).

Every case runs in a copy of tests/fixtures/main_run (a project with prototxt/ and the run
runs/short); a refused command must leave every file of it byte for byte as it was.
Read-only cases use a real read-only tmpfs in a user+mount namespace (`unshare -rm`), as
root ignores file modes; where the machine does not allow that, they are skipped.
"""
import errno
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import run

from seqgen.io import atomic
from seqgen.io.atomic import WriteFailed, atomic_write_bytes
from seqgen.runs.folder import RunLock

ROOT = Path(__file__).parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "main_run"
SOLVER = ROOT / "prototxt" / "lstm_short_solver.prototxt"
NET = "prototxt/lstm_short.prototxt"
RUN = "runs/short"
WEIGHTS = f"{RUN}/lstm_short_iter_400.caffemodel"


@pytest.fixture
def proj(tmp_path, monkeypatch):
    """A copy of the fixture project as the working directory, with w.safetensors (a
    torch export of the run) and a user's own proj/model.py."""
    pytest.importorskip("safetensors")
    root = tmp_path / "p"
    shutil.copytree(FIXTURE, root)
    monkeypatch.chdir(root)
    (root / "proj").mkdir()
    (root / "proj" / "model.py").write_text("# my own model\n")
    assert run_quiet("export", RUN, "--format", "torch", "--out", "w.safetensors") == 0
    (root / "mine.onnx").write_text("not seqgen's\n")
    (root / f"{RUN}/old.onnx").write_text("a run's own file\n")
    shutil.copytree(root / RUN, root / "other" / "run2")
    (root / "afile").write_text("a file\n")
    (root / "mine").mkdir()
    (root / "mine" / "loss.csv").write_text("my own losses\n")
    (root / "w").mkdir()
    shutil.copy(root / WEIGHTS, root / "w" / "lstm_short_iter_5.caffemodel")
    return root


def run_quiet(*argv):
    from seqgen.app.cli import main

    return main([str(a) for a in argv])


def digests(root):
    """sha256 of every file under `root`, by relative path."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


# -- part 1: nothing lost ----------------------------------------------------------------

REFUSED = [
    (["export", RUN, "--format", "onnx", "--out", WEIGHTS],
     f"--out {WEIGHTS}: --format onnx writes .onnx files; name it lstm_short_iter_400.onnx"),
    (["export", RUN, "--format", "onnx", "--out", WEIGHTS, "--force"],
     f"--out {WEIGHTS}: --format onnx writes .onnx files; name it lstm_short_iter_400.onnx"),
    (["export", RUN, "--format", "torch", "--out", f"{RUN}/lstm_short_iter_400.solverstate"],
     f"--out {RUN}/lstm_short_iter_400.solverstate: --format torch writes .safetensors files; "
     "name it lstm_short_iter_400.safetensors"),
    (["import", "w.safetensors", "--net", NET, "--out", f"{RUN}/loss.csv"],
     f"--out {RUN}/loss.csv: seqgen import writes .caffemodel files; name it loss.caffemodel"),
    (["import", "w.safetensors", "--net", NET, "--out", f"{RUN}/lstm_short_iter_200.caffemodel",
      "--force"],
     f"--out {RUN}/lstm_short_iter_200.caffemodel: is a file of the run folder {RUN}; seqgen "
     "never writes over a run's files, even with --force; choose another --out"),
    (["export", RUN, "--format", "onnx", "--out", f"{RUN}/old.onnx", "--force"],
     f"--out {RUN}/old.onnx: is a file of the run folder {RUN}; seqgen never writes over a "
     "run's files, even with --force; choose another --out"),
    (["export", RUN, "--format", "onnx", "--out", "mine.onnx"],
     "--out mine.onnx: the file exists; seqgen writes over it only with --force"),
    (["draw", NET, "--out", NET],
     f"--out {NET}: seqgen draw writes .png or .svg files; name it lstm_short.png"),
    (["draw", "net.svg", "--out", "net.svg", "--force"],
     "--out net.svg: is one of this command's inputs; seqgen never writes over its inputs, "
     "even with --force; choose another --out"),
    (["generate", "--weights", WEIGHTS, "--steps", 20, "--data", f"{RUN}/generated.csv"],
     "--out {root}/runs/short/generated.csv: is one of this command's inputs; seqgen never "
     "writes over its inputs, even with --force; choose another --out"),
    (["train", SOLVER, "--iters", 5, "--out", "mine"],
     "mine: the folder holds loss.csv but no run (no run.json); a run would write over them; "
     "choose another --out"),
    (["train", SOLVER, "--iters", 5, "--out", "w", "--weights", "w/lstm_short_iter_5.caffemodel"],
     "w: the folder holds lstm_short_iter_5.caffemodel but no run (no run.json); a run would "
     "write over them; choose another --out"),
    (["generate", "--weights", WEIGHTS, "--steps", 20, "--out", "other/run2"],
     "--out other/run2/generated.csv: is a file of the run folder other/run2; seqgen never "
     "writes over a run's files, even with --force; choose another --out"),
]


@pytest.mark.parametrize("argv, message", REFUSED, ids=[" ".join(map(str, a)) for a, _ in
                                                        REFUSED])
def test_a_refused_output_is_one_line_and_nothing_changes(proj, capsys, argv, message):
    shutil.copy(NET, proj / "net.svg")  # a net file named like a drawing, for the input case
    before = digests(proj)
    code, out, err = run(capsys, *argv)
    assert (code, err) == (2, f"seqgen: error: {message.format(root=proj)}\n")
    assert digests(proj) == before


def test_exports_replace_model_py_only_when_it_is_seqgens(proj, capsys):
    """A user's model.py beside the state dict stops the export (--force replaces it);
    seqgen's own model.py from an earlier export is rewritten without a word."""
    before = digests(proj)
    code, _, err = run(capsys, "export", RUN, "--format", "torch", "--out", "proj/w.safetensors")
    assert code == 2
    assert err == (f"seqgen: error: --out proj/w.safetensors: beside it, {proj}/proj/model.py: "
                   "the file exists; seqgen writes over it only with --force\n")
    assert digests(proj) == before
    code, _, err = run(capsys, "export", RUN, "--format", "torch", "--out", "w2.safetensors")
    assert code == 0, err  # model.py beside w.safetensors is seqgen's: same text
    code, _, err = run(capsys, "export", RUN, "--format", "torch", "--out", "proj/w.safetensors",
                       "--force")
    assert code == 0, err
    assert (proj / "proj" / "model.py").read_text() != "# my own model\n"


def test_force_replaces_an_ordinary_file_and_generate_rewrites_its_own(proj, capsys):
    code, _, err = run(capsys, "export", RUN, "--format", "onnx", "--out", "mine.onnx", "--force")
    assert code == 0, err
    assert (proj / "mine.onnx").read_bytes() != b"not seqgen's\n"
    for _ in range(2):  # into the run itself, and again into a folder of its own
        code, _, err = run(capsys, "generate", "--weights", WEIGHTS, "--steps", 20)
        assert code == 0, err
        code, _, err = run(capsys, "generate", "--weights", WEIGHTS, "--steps", 20, "--out",
                           "gen")
        assert code == 0, err


# -- part 4: outputs that cannot be written ----------------------------------------------

PLACES = [
    (["train", SOLVER, "--iters", 5, "--out", "afile"],
     "--out afile: is a file, not a folder; choose another --out"),
    (["train", SOLVER, "--iters", 5, "--out", "afile/run"],
     "--out afile/run: lies under afile, which is a file, not a folder; choose another --out"),
    (["generate", "--weights", WEIGHTS, "--out", "afile"],
     "--out afile: is a file, not a folder; choose another --out"),
    (["generate", "--weights", WEIGHTS, "--out", "afile/gen"],
     "--out afile/gen: lies under afile, which is a file, not a folder; choose another --out"),
    (["sweep", SOLVER, "--iters", 5, "--out", "afile"],
     "--out afile: is a file, not a folder; choose another --out"),
    (["sweep", SOLVER, "--iters", 5, "--out", "afile/sw"],
     "--out afile/sw: lies under afile, which is a file, not a folder; choose another --out"),
    (["export", RUN, "--format", "onnx", "--out", "afile/x.onnx"],
     "--out afile/x.onnx: lies under afile, which is a file, not a folder; choose another "
     "--out"),
    (["export", RUN, "--format", "onnx", "--out", "nowhere/x.onnx"],
     "--out nowhere/x.onnx: folder nowhere does not exist; create it or choose another --out"),
    (["draw", NET, "--out", "afile/net.png"],
     "--out afile/net.png: lies under afile, which is a file, not a folder; choose another "
     "--out"),
]


@pytest.mark.parametrize("argv, message", PLACES, ids=[" ".join(map(str, a)) for a, _ in
                                                       PLACES])
def test_an_output_place_that_cannot_be_written_is_one_line(proj, capsys, argv, message):
    before = digests(proj)
    code, out, err = run(capsys, *argv)
    assert (code, err) == (2, f"seqgen: error: {message}\n")
    assert digests(proj) == before


def test_an_output_that_is_a_folder_is_one_line(proj, capsys):
    (proj / "d.png").mkdir()
    code, _, err = run(capsys, "draw", NET, "--out", "d.png")
    assert (code, err) == (2, "seqgen: error: --out d.png: is a folder; name a file\n")


def _refuse_open(code):
    def fake_open(path, *args, **kwargs):
        raise OSError(code, os.strerror(code), os.fspath(path))
    return fake_open


def test_a_forbidden_folder_is_one_line_exit_2(proj, capsys, monkeypatch):
    """EACCES (root ignores modes, so the error is raised here): the place is at fault."""
    monkeypatch.setattr(atomic, "open", _refuse_open(errno.EACCES), raising=False)
    code, _, err = run(capsys, "export", RUN, "--format", "onnx", "--out", "x.onnx")
    assert (code, err) == (2, "seqgen: error: cannot write x.onnx: Permission denied; choose "
                              "a place you may write to\n")
    assert not list(proj.glob("*x.onnx*"))


def test_a_full_disk_mid_write_is_one_line_exit_1(proj, capsys, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "fsync", full)
    code, _, err = run(capsys, "draw", NET, "--out", "net.png")
    assert (code, err) == (1, "seqgen: error: cannot write net.png: No space left on device\n")
    assert not list(proj.glob("*net.png*"))  # neither the file nor its temporary


def test_cleanup_errors_never_hide_the_real_error(tmp_path, monkeypatch):
    """The temporary file was never created and removing it fails too (EROFS): the error
    is the write's own."""
    monkeypatch.setattr(atomic, "open", _refuse_open(errno.ENOSPC), raising=False)

    def unlink(path):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(path))

    monkeypatch.setattr(atomic.os, "unlink", unlink)
    with pytest.raises(WriteFailed) as caught:
        atomic_write_bytes(tmp_path / "x.bin", b"data")
    assert str(caught.value) == f"cannot write {tmp_path / 'x.bin'}: No space left on device"
    assert caught.value.exit_code == 1


def test_an_os_error_escaping_a_command_is_one_line(proj, capsys, monkeypatch):
    """A write outside io.atomic (the run's lock file) still ends in one line."""
    def forbidden(self):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), self.path)

    monkeypatch.setattr(RunLock, "acquire", forbidden)
    code, _, err = run(capsys, "train", SOLVER, "--iters", 5, "--out", "new")
    assert (code, err) == (2, "seqgen: error: cannot write new/.seqgen.lock: Permission "
                              "denied; choose a place you may write to\n")


# -- part 4 on a real read-only file system ------------------------------------------------

READ_ONLY = {
    "train": (["train", SOLVER, "--iters", 5, "--out", "ro/new"],
              "--out ro/new: cannot write in ro: Read-only file system; choose a writable "
              "--out"),
    "train-resume": (["train", SOLVER, "--iters", 5, "--allow-changes", "--resume",
                      "ro/run/lstm_short_iter_400.solverstate"],
                     "--out ro/run: cannot write in ro/run: Read-only file system; choose a "
                     "writable --out"),
    "generate-in-run": (["generate", "--weights", "ro/run/lstm_short_iter_400.caffemodel",
                         "--steps", 20],
                        "cannot write {root}/ro/run/generated.csv: Read-only file system; "
                        "choose a writable place"),
    "generate-out": (["generate", "--weights", WEIGHTS, "--steps", 20, "--out", "ro/gen"],
                     "--out ro/gen: cannot write in ro: Read-only file system; choose a "
                     "writable --out"),
    "sweep": (["sweep", SOLVER, "--iters", 5, "--out", "ro/sw"],
              "--out ro/sw: cannot write in ro: Read-only file system; choose a writable --out"),
    "export-onnx": (["export", RUN, "--format", "onnx", "--out", "ro/x.onnx"],
                    "cannot write ro/x.onnx: Read-only file system; choose a writable place"),
    "export-torch": (["export", RUN, "--format", "torch", "--out", "ro/x.safetensors"],
                     "cannot write ro/x.safetensors: Read-only file system; choose a writable "
                     "place"),
    "import": (["import", "w.safetensors", "--net", NET, "--out", "ro/x.caffemodel"],
               "cannot write ro/x.caffemodel: Read-only file system; choose a writable place"),
    "draw": (["draw", NET, "--out", "ro/x.png"],
             "cannot write ro/x.png: Read-only file system; choose a writable place"),
    "plot": (["plot", "ro/run"],
             "cannot write ro/run/generated.png: Read-only file system; choose a writable "
             "place"),
}
API = """
import sys
import seqgen
from seqgen.io.atomic import WriteFailed
from seqgen.solver import Solver
try:
    if sys.argv[1] == "save":
        seqgen.Net("prototxt/lstm_short.prototxt", phase=seqgen.TEST).save("ro/n.caffemodel")
    else:
        solver = Solver("prototxt/lstm_short_solver.prototxt", out_dir="ro/snaps",
                        log=lambda *a: None)
        solver.snapshot()
except WriteFailed as e:
    print(e.exit_code, e)
"""
API_CASES = {"Net.save": ("save", "2 cannot write ro/n.caffemodel: Read-only file system; "
                                  "choose a writable place"),
             "solver.snapshot": ("snapshot", "2 cannot write ro/snaps: Read-only file system; "
                                             "choose a writable place")}


def _read_only_script(root):
    """The shell script that mounts `root`/ro read-only (holding a copy of the run) and runs
    every case in it, each case's exit code and stderr into `root`/results/NAME."""
    lines = ["set -e", f"cd {root}", "mount -t tmpfs none ro", f"cp -r {RUN} ro/run",
             "mount -o remount,ro ro", "set +e"]
    py = f"{sys.executable}"
    for name, (argv, _) in READ_ONLY.items():
        args = " ".join(f"'{a}'" for a in argv)
        lines.append(f"{py} -m seqgen {args} >/dev/null 2>results/{name}; "
                     f"echo $? >>results/{name}")
    for name, (arg, _) in API_CASES.items():
        lines.append(f"{py} api.py {arg} >results/{name} 2>&1")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def read_only(tmp_path_factory):
    """Run every read-only case once, in one namespace; returns (project root, results)."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare: cannot mount a read-only file system here")
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs none /mnt && "
                            "mount -o remount,ro /mnt"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("this machine does not allow a user+mount namespace (unshare -rm), so "
                    "no real read-only file system")
    pytest.importorskip("safetensors")
    root = tmp_path_factory.mktemp("ro") / "p"
    shutil.copytree(FIXTURE, root)
    (root / "ro").mkdir()
    (root / "results").mkdir()
    (root / "api.py").write_text(API)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    subprocess.run([sys.executable, "-m", "seqgen", "export", RUN, "--format", "torch",
                    "--out", "w.safetensors"], cwd=root, env=env, check=True,
                   capture_output=True)
    (root / "ro.sh").write_text(_read_only_script(root))
    done = subprocess.run(["unshare", "-rm", "sh", str(root / "ro.sh")], cwd=root, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return root, {p.name: p.read_text() for p in (root / "results").iterdir()}


@pytest.mark.parametrize("name", list(READ_ONLY))
def test_a_read_only_file_system_is_one_line(read_only, name):
    root, results = read_only
    message = READ_ONLY[name][1].format(root=root)
    err, code = results[name].rstrip("\n").rsplit("\n", 1)
    lines = [line for line in err.splitlines() if not line.startswith("Compiling")]
    assert lines == [f"seqgen: error: {message}"]
    assert code == "2"


@pytest.mark.parametrize("name", list(API_CASES))
def test_the_api_raises_one_line_on_a_read_only_file_system(read_only, name):
    root, results = read_only
    assert results[name].strip().splitlines()[-1] == API_CASES[name][1]

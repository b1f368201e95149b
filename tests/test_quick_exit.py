"""`seqgen generate` ends its process without the interpreter's teardown (app/quick_exit.py):
the exit handlers still run, the streams are flushed, the exit code is kept; a non-daemon
thread still running keeps the usual exit; `main()` called in-process returns."""
import shutil
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import atexit, sys, threading, time
from seqgen.app.quick_exit import leave_now

class Torn:
    def __del__(self):
        print("torn down", flush=True)

kept = Torn()  # freed only by the interpreter's teardown
atexit.register(print, "exit handler")
if sys.argv[1] == "thread":
    threading.Thread(target=time.sleep, args=(0.2,)).start()
print("written", end="")  # (no newline: still in the buffer)
leave_now(3)
print(" and returned")
"""


def run_script(case):
    return subprocess.run([sys.executable, "-c", SCRIPT, case], capture_output=True,
                          text=True, timeout=60)


def test_leave_now_runs_the_exit_handlers_keeps_the_code_and_skips_the_teardown():
    done = run_script("plain")
    assert done.returncode == 3
    assert done.stdout == "writtenexit handler\n"  # flushed, handler run, no teardown


def test_leave_now_returns_while_a_non_daemon_thread_runs():
    done = run_script("thread")
    assert done.returncode == 0
    assert done.stdout == "written and returned\nexit handler\ntorn down\n"


def test_main_in_process_returns_after_a_command_that_ends_quickly(tmp_path, monkeypatch,
                                                                    capsys):
    from seqgen.app.cli import main

    shutil.copytree(Path(__file__).parent / "fixtures" / "main_run", tmp_path,
                    dirs_exist_ok=True)
    monkeypatch.chdir(tmp_path)
    assert main(["generate", "runs/short", "--steps", "5"]) == 0
    assert capsys.readouterr().out.startswith("Generated 5 steps: MSE ")

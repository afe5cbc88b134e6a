"""A child and everything it starts, stopped as one session."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from federation.common.processes import (run_in_own_session, session_processes, stop_session)

# Leaves a grandchild behind that moved to a process group of its own and ignores SIGTERM.
STUBBORN_TREE = textwrap.dedent("""
    import os, signal, sys, time
    if os.fork() == 0:
        os.setpgrp()
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print(os.getpid(), flush=True)
        time.sleep(600)
    time.sleep(600)
""")


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_stop_session_stops_processes_that_left_the_group_and_ignore_sigterm():
    proc = subprocess.Popen([sys.executable, "-c", STUBBORN_TREE], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    grandchild = int(proc.stdout.readline())
    assert os.getpgid(grandchild) != proc.pid
    assert session_processes(proc.pid) == {proc.pid, grandchild}

    assert stop_session(proc.pid, grace=0.5) == set()
    proc.wait(5)
    assert not alive(grandchild)
    assert session_processes(proc.pid) == set()


def test_a_child_out_of_time_is_stopped_with_all_it_started(tmp_path):
    log = tmp_path / "run.log"
    started = time.monotonic()
    code, left = run_in_own_session(["sh", "-c", "sleep 600 & echo started; sleep 600"], env=dict(os.environ),
                                    cwd=tmp_path, stdout=log, timeout=1)
    assert code is None and left == set()
    assert time.monotonic() - started < 30
    assert log.read_text() == "started\n"


def test_a_quick_exit_keeps_the_exit_code_the_threads_and_the_atexit_work(tmp_path):
    script = ("import atexit, pathlib, sys, threading, time\n"
              "from federation.common.processes import exit_without_teardown\n"
              "atexit.register(lambda: pathlib.Path('atexit').write_text('done'))\n"
              "def late():\n    time.sleep(0.3)\n    pathlib.Path('thread').write_text('done')\n"
              "threading.Thread(target=late).start()\n"
              "print('buffered', end='')\n"
              "exit_without_teardown(7)\n")
    run = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=30,
                         env={"PATH": os.environ["PATH"]})
    assert run.returncode == 7 and run.stdout == "buffered", run
    assert (tmp_path / "thread").read_text() == "done" and (tmp_path / "atexit").read_text() == "done"


def test_a_quick_exit_with_an_idle_thread_pool_left_open_still_ends():
    # the interpreter's exit shuts such pools down through threading's own exit hooks
    script = ("from concurrent.futures import ThreadPoolExecutor\n"
              "from federation.common.processes import exit_without_teardown\n"
              "pool = ThreadPoolExecutor(2)\npool.submit(print, 'task')\n"
              "exit_without_teardown(0)\n")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30,
                         env={"PATH": os.environ["PATH"]})
    assert run.returncode == 0 and "task" in run.stdout, run


# ---------------------------------------------------------------- imports started ahead


def test_imports_ahead_in_a_thread_of_lower_priority_than_the_process():
    """The thread imports what it is given at a nice 10 above the process's own, but numpy, in
    the caller's thread; the process (its main thread) keeps its priority; a name that cannot
    be imported is skipped."""
    import threading

    from federation.common.processes import import_ahead

    seen = {}
    real_import = __import__("importlib").import_module

    def spy(name):
        seen[name] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        return real_import(name)

    main_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    import importlib
    original, importlib.import_module = importlib.import_module, spy
    try:
        import_ahead(("json", "no_such_module_here", "numpy", "csv")).join(10)
    finally:
        importlib.import_module = original
    assert set(seen) == {"json", "no_such_module_here", "numpy", "csv"}
    assert seen.pop("numpy") == main_nice  # its OpenBLAS threads keep the process's priority
    assert set(seen.values()) == {min(19, main_nice + 10)}
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main_nice

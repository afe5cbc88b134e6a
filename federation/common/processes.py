"""Running a child and everything it starts, and stopping all of it afterwards.

A child runs as the leader of a new session; when it ends (or runs out of time) every
process still in that session is stopped: SIGTERM, then SIGKILL. The whole session, not
just the process group: a process may move to a group of its own (Ray's reaper calls
setpgrp), but it stays in the session. Used for jobs, simulations and the Flower server.

And the quick end of such a child (`exit_without_teardown`): the DS's Flower server and the
owner's job harness load Flower, gRPC, pandas, matplotlib; the interpreter's teardown of them
took about a second on the run's path, after everything the child had to do was done.
"""

from __future__ import annotations

import atexit
import gc
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

STOP_GRACE = 10.0  # s between SIGTERM and SIGKILL


def session_processes(sid: int) -> set[int]:
    """Live (not zombie) processes of session `sid`."""
    pids = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        state, _ppid, _pgrp, session = stat[stat.rindex(")") + 2:].split()[:4]
        if int(session) == sid and state != "Z":
            pids.add(int(entry))
    return pids


def stop_session(sid: int, grace: float = STOP_GRACE) -> set[int]:
    """Stop every process of session `sid` (SIGTERM, then SIGKILL after `grace` s); return
    those still alive."""
    seen: set[int] = set()
    alive = session_processes(sid)
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        signalled: set[int] = set()
        deadline = time.monotonic() + wait
        while alive and time.monotonic() < deadline:
            for pid in alive - signalled:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            signalled |= alive
            seen |= alive
            time.sleep(0.1)
            alive = session_processes(sid)
    for pid in seen:  # as a container's PID 1 we inherit the orphans: reap them
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
    return alive


def run_in_own_session(cmd: list[str], *, env: dict[str, str], cwd: Path, stdout: Path,
                       stderr: Path | None = None, timeout: float | None = None,
                       grace: float = STOP_GRACE) -> tuple[int | None, set[int]]:
    """Run `cmd` as the leader of a new session, its output appended to `stdout` (and `stderr`,
    else the same file); afterwards stop all it left in that session. Returns its exit code
    (None: out of time) and the processes that would not stop."""
    with open(stdout, "ab") as out, open(stderr or os.devnull, "ab") as err:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out,
                                stderr=err if stderr else subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        code = None
    finally:  # also when we are being stopped ourselves
        left = stop_session(proc.pid, grace)
        proc.wait()
    return code, left


# How much lower than its process an import-ahead thread runs: what it loads is needed only
# seconds later, and on 2 cores every party starting at once needs the CPU first.
AHEAD_NICE = 10
# Imported in the caller's thread, at its priority: numpy's OpenBLAS starts its worker threads
# as it loads, and a thread keeps the nice of the thread that started it, for good.
AT_FULL_PRIORITY = ("numpy",)


def import_ahead(names: tuple[str, ...], nice: int = AHEAD_NICE) -> threading.Thread:
    """Start importing `names` in a thread of its own, `nice` steps below the process (on Linux
    a thread's priority is its own), in a child started ahead of its work. Join the thread
    before that work begins. An import that fails is skipped (the work that needs it meets the
    error again, in its own log). Names in AT_FULL_PRIORITY are imported first, in the caller's
    thread."""
    import importlib

    def load(name: str) -> None:
        try:
            importlib.import_module(name)
        except Exception:
            pass

    later = [name for name in names if name not in AT_FULL_PRIORITY]
    for name in names:
        if name in AT_FULL_PRIORITY:
            load(name)

    def run() -> None:
        try:
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
        except (AttributeError, OSError):
            pass  # no per-thread priority here: import at the process's
        for name in later:
            load(name)

    thread = threading.Thread(target=run, name="import-ahead", daemon=True)
    thread.start()
    return thread


def exit_without_teardown(code: int) -> None:
    """End with `code` as the interpreter's own exit would, less the teardown of every module
    loaded: the program's own (non-daemon) threads are waited for and its atexit work is done
    first, as at a normal exit. Only after a normal return: an exception or sys.exit() ends the
    usual way."""
    threading._shutdown()  # what the interpreter's exit does first: thread pools' hooks, then joins
    atexit._run_exitfuncs()
    gc.collect()  # finalizers of what is left in cycles (an unclosed file's buffer, say)
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)

"""scripts/soak N: the DS's whole workflow N times against the same owners.

Run 1 starts the stack from nothing; each later run restarts the DS, which logs in,
submits a new job to every owner and runs a new Flower round. A run counts when the
DS reports `ok`, which it only does when every owner replied. Printed: each run's time, the
median of the first and of the last ten, and the files in each party's synced tree and in the
sync server's store after the first run and after the last (SYNCED_RETENTION: its value here,
30s unless set, moves ended jobs' files out of the synced trees).
"""

from __future__ import annotations

import os
import statistics
import sys
import time

from stack import Stack


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    stack = Stack("federation-soak")
    retention = stack.env.setdefault("SYNCED_RETENTION", os.environ.get("SYNCED_RETENTION", "30s"))
    parties = {"ds": "ds@openmined.org", "do1": "do1@openmined.org", "do2": "do2@openmined.org"}
    ok, times, files = 0, [], []
    try:
        stack.compose("down", "-v", "--remove-orphans", check=False)
        stack.compose("build")
        for i in range(1, runs + 1):
            t0 = time.time()
            if i == 1:
                stack.compose("up", "-d")
            else:
                stack.compose("restart", "ds")
            record = stack.wait_run(started_after=t0 - 1)
            replied = ", ".join(record.datasites) or "none"
            good = record.status == "ok"
            ok += good
            took = record.seconds or 0.0
            times.append(took)
            print(f"run {i:>3}: {record.status:<6} {took:5.1f} s  replied: {replied}"
                  + ("" if good else f"  error: {record.error[:200]}"), flush=True)
            if i in (1, runs):
                files.append(stack.synced_files(parties))
                print(f"files in the synced trees after run {i}: {files[-1]}", flush=True)
    finally:
        stack.down()
    print(f"every reply: {ok} of {runs}")
    if len(times) >= 2:
        first, last = times[:10], times[-10:]
        print(f"median of the first {len(first)} runs {statistics.median(first):.1f} s, of the last {len(last)} "
              f"{statistics.median(last):.1f} s ({statistics.median(last) / statistics.median(first):.2f}x); "
              f"SYNCED_RETENTION={retention}")
    if len(files) == 2:
        print("files in the synced trees, first run -> last: "
              + ", ".join(f"{k} {files[0][k]} -> {files[1][k]}" for k in files[0]))
    return 0 if ok == runs else 1


if __name__ == "__main__":
    sys.exit(main())

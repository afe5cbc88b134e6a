"""scripts/soak N: the DS's whole workflow N times against the same owners.

Run 1 starts the stack from nothing; each later run restarts the DS, which logs in,
submits a new job to every owner and runs a new Flower round. A run counts when the
DS reports `ok`, which it only does when every owner replied.
"""

from __future__ import annotations

import sys
import time

from stack import Stack


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    stack = Stack("federation-soak")
    ok = 0
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
            print(f"run {i:>3}: {record.status:<6} {took:5.1f} s  replied: {replied}"
                  + ("" if good else f"  error: {record.error[:200]}"), flush=True)
    finally:
        stack.down()
    print(f"every reply: {ok} of {runs}")
    return 0 if ok == runs else 1


if __name__ == "__main__":
    sys.exit(main())

"""`datasite`: a person's view of a datasite, from inside its container.

On a data owner:
    datasite jobs                       every job: id, submitter, name, dataset, submitted,
                                        status, code hash, and why it was or wasn't approved
    datasite show JOB                   the submitted code, every file with its path, and its hash
    datasite approve JOB                the runner then runs it on private data
    datasite reject JOB --reason TEXT   status `rejected`, with the reason
    datasite audit [JOB] [--show]       every reply that left (or was refused), --show its values
    datasite replies / release ID / withhold ID --reason TEXT
                                        replies waiting for a person (REPLY_APPROVAL=manual)
On the data scientist:
    datasite status                     each owner: reachable, dataset present, my job's status

JOB is a job id or a unique prefix of one. An unknown or ambiguous id, or a decision that
does not fit the job's status, is a clear error with exit code 2, and nothing changes.
The commands live with their party (federation.owner.cli, federation.scientist.cli).
"""

from __future__ import annotations

import argparse
import sys
import warnings

from federation.common.logs import quiet_syft_logs
from federation.common.settings import Party, SettingsError
from federation.common.syftbox import point_libraries_at


def parser() -> argparse.ArgumentParser:
    from federation.owner import cli as owner_cli
    from federation.scientist import cli as scientist_cli

    p = argparse.ArgumentParser(prog="datasite", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    owner_cli.add_commands(sub)
    scientist_cli.add_commands(sub)
    return p


def _quiet_libraries() -> None:
    """A CLI prints its answer, not the libraries' deprecation warnings and info logs."""
    warnings.filterwarnings("ignore")
    quiet_syft_logs("ERROR")


def main(argv: list[str] | None = None) -> int:
    from federation.owner.jobs import JobError

    args = parser().parse_args(argv)
    _quiet_libraries()
    try:
        party = Party.from_env()
        point_libraries_at(party)
        return args.fn(party, args)
    except (JobError, SettingsError, ValueError) as e:
        print(f"datasite {args.command}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

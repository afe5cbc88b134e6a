"""Text for a person at a terminal: the `datasite` CLI's tables."""

from __future__ import annotations


def table(rows: list[list[str]], header: list[str]) -> str:
    """Fixed-width columns, two spaces apart (the tests read them back by position)."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(fmt.format(*r).rstrip() for r in [header, *rows])

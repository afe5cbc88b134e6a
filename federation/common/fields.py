"""Reading values out of JSON written by another process (or another version of this one):
each helper returns the value when it has the expected type, else an empty default. Used
wherever a file is read tolerantly (the run record, the results page)."""

from __future__ import annotations


def number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def integer(value) -> int | None:
    n = number(value)
    return int(n) if n is not None and n.is_integer() else None


def text(value) -> str:
    return value if isinstance(value, str) else ""


def emails(value) -> list[str]:
    return [e for e in value if isinstance(e, str)] if isinstance(value, list) else []


def mapping(value) -> dict:
    return value if isinstance(value, dict) else {}

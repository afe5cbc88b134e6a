"""How a role's log looks: one line per event on stdout, the syft-* libraries kept quiet."""

from __future__ import annotations

import logging
import sys

from federation.common import settings


def configure_logging() -> None:
    level = settings.log_level()
    logging.basicConfig(
        level=level, stream=sys.stdout,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S",
    )
    if level != "DEBUG":
        quiet_syft_logs("WARNING")


def quiet_syft_logs(default_level: str) -> None:
    """syft-* log through loguru at DEBUG/INFO: keep only `SYFT_LOG_LEVEL` (or the default) and up."""
    try:
        from loguru import logger as loguru_logger
    except ImportError:
        return
    loguru_logger.remove()
    loguru_logger.add(sys.stderr, level=settings.syft_log_level(default_level))

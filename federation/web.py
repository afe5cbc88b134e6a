"""The results, served over HTTP: a plain listing of the results folder."""

from __future__ import annotations

import functools
import http.server
import logging
from pathlib import Path

log = logging.getLogger(__name__)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # no line per request in the container log
        pass


def serve_results(results_dir: Path, port: int) -> None:
    handler = functools.partial(_QuietHandler, directory=str(results_dir))
    with http.server.ThreadingHTTPServer(("0.0.0.0", port), handler) as server:
        log.info("results served on port %d", port)
        server.serve_forever()

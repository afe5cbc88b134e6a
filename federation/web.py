"""The results, served over HTTP: a page at / (federation.results_page) and every file of the
results folder under its own path (/aggregate.json, /figures/Glucose.png, ...)."""

from __future__ import annotations

import functools
import html
import http.server
import json
import logging
import threading
import urllib.parse
from pathlib import Path

from federation.results_page import load_page, page_version, render

log = logging.getLogger(__name__)

PAGE_PATHS = {"/", "/index.html"}
VERSION_PATH = "/page-version"


class ResultsHandler(http.server.SimpleHTTPRequestHandler):
    """Files as SimpleHTTPRequestHandler serves them (nothing outside `directory`), plus the page."""

    def do_GET(self):
        if not self._send_generated(with_body=True):
            super().do_GET()

    def do_HEAD(self):
        if not self._send_generated(with_body=False):
            super().do_HEAD()

    def _send_generated(self, with_body: bool) -> bool:
        """Answer the page or its version; False for any other path (a file of the folder)."""
        path = urllib.parse.urlsplit(self.path).path
        results_dir = Path(self.directory)
        if path in PAGE_PATHS:
            body, content_type = self._page(results_dir), "text/html; charset=utf-8"
        elif path == VERSION_PATH:
            body, content_type = json.dumps({"version": page_version(results_dir)}), "application/json"
        else:
            return False
        data = body.encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")  # both change with every run
        self.end_headers()
        if with_body:
            self.wfile.write(data)
        return True

    @staticmethod
    def _page(results_dir: Path) -> str:
        try:
            return render(load_page(results_dir))
        except Exception as e:  # never a 500: say what broke, and keep polling until it is fixed
            log.exception("results page failed")
            return (f"<!DOCTYPE html><title>Results</title><p>The results page could not be built: "
                    f"{html.escape(f'{type(e).__name__}: {e}')}</p>"
                    f"<script>setTimeout(() => location.reload(), 3000)</script>")

    def log_message(self, format, *args):  # no line per request in the container log
        pass


def results_server(results_dir: Path, port: int, host: str = "0.0.0.0") -> http.server.ThreadingHTTPServer:
    """A server bound to `port` (0: any free port), not yet serving."""
    handler = functools.partial(ResultsHandler, directory=str(results_dir))
    return http.server.ThreadingHTTPServer((host, port), handler)


def serve_results(results_dir: Path, port: int) -> http.server.ThreadingHTTPServer:
    """Serve in a background thread (the page follows the run as it goes); returns the server."""
    server = results_server(results_dir, port)
    threading.Thread(target=server.serve_forever, name="results-page", daemon=True).start()
    log.info("results page on port %d", port)
    return server

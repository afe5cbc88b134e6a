"""The results, served over HTTP: a page at / (federation.scientist.results_page), its
stylesheet and other files of this package's static folder under /static/, and every file of
the results folder under its own path (/aggregate.json, /figures/Glucose.png, ...)."""

from __future__ import annotations

import functools
import html
import http.server
import json
import logging
import mimetypes
import threading
import urllib.parse
from pathlib import Path

from federation.scientist.results_page import load_page, page_version, render

log = logging.getLogger(__name__)

PAGE_PATHS = {"/", "/index.html"}
VERSION_PATH = "/page-version"
STATIC_PREFIX = "/static/"  # the page's own files; a results folder's static/ is not served
STATIC_DIR = Path(__file__).parent / "static"
STATIC_TYPES = {".css": "text/css; charset=utf-8"}  # not left to the host's mime.types


class ResultsHandler(http.server.SimpleHTTPRequestHandler):
    """Files as SimpleHTTPRequestHandler serves them (nothing outside `directory`), plus the page."""

    def do_GET(self):
        if not self._send_generated(with_body=True):
            super().do_GET()

    def do_HEAD(self):
        if not self._send_generated(with_body=False):
            super().do_HEAD()

    def _send_generated(self, with_body: bool) -> bool:
        """Answer the page, its version or a static file; False for any other path (a file of the folder)."""
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        results_dir = Path(self.directory)
        if path in PAGE_PATHS:
            data, content_type = self._page(results_dir).encode("utf-8"), "text/html; charset=utf-8"
            cache = "no-store"  # both change with every run
        elif path == VERSION_PATH:
            data, content_type = json.dumps({"version": page_version(results_dir)}).encode("utf-8"), "application/json"
            cache = "no-store"
        elif path.startswith(STATIC_PREFIX):
            static = _static_file(path[len(STATIC_PREFIX):])
            if static is None:
                self.send_error(404, "File not found")
                return True
            data, content_type = static
            cache = "no-cache"  # a new version of the package may bring a new stylesheet
        else:
            return False
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", cache)
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


def _static_file(name: str) -> tuple[bytes, str] | None:
    """The bytes and content type of a file directly in STATIC_DIR; None for anything else.

    Only the names of the folder's regular files are accepted, so no "..", subfolder or
    absolute path can reach a file outside it.
    """
    try:
        names = {p.name for p in STATIC_DIR.iterdir() if p.is_file()}
        if name not in names:
            return None
        data = (STATIC_DIR / name).read_bytes()
    except OSError:
        return None
    content_type = STATIC_TYPES.get(Path(name).suffix.lower())
    if content_type is None:
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if content_type.startswith("text/"):
            content_type += "; charset=utf-8"
    return data, content_type


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

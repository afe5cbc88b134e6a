"""Ask this party's SyftBox client to sync now: a message written goes up without waiting for the loop.

Every file hop would wait for the writer's sync loop (2 s here) before the upload. After syft-rpc
writes a request or a response, or syft-rds a record (`SyftMessage.dump`,
`YAMLStore._save_record`, patched in `syft_patches`), or a party makes its keys, `nudge()` asks
the party's own client, at its local API (`POST /sync/now`, which the launcher adds), to run its
next pass at once. The client is found through `SYFTBOX_CLIENT_CONFIG_PATH` (settings; its `client_url`);
where that is unset (a confined job, a unit test) nothing is asked. One daemon thread sends the
nudges, so a writer never waits on it, and a burst of writes (a round to eight owners) costs one
request or two. A client that does not answer is left alone: its loop syncs anyway.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request

from federation.common import settings

log = logging.getLogger(__name__)

TIMEOUT = 1.0  # seconds: the client answers a local request in milliseconds

_wanted = threading.Event()
_lock = threading.Lock()
_sender: threading.Thread | None = None


def client_url() -> str | None:
    """The local API of this party's SyftBox client, from its config; None if there is none."""
    config = settings.syft_client_config()
    if config is None:
        return None
    try:
        url = json.loads(config.read_text()).get("client_url")
    except (OSError, ValueError, AttributeError):
        return None
    return url.rstrip("/") if isinstance(url, str) and url.startswith("http://") else None


_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # the client is local: never via a proxy
_warned: set[str] = set()


def send_once(url: str) -> bool:
    try:
        _direct.open(urllib.request.Request(f"{url}/sync/now", method="POST"), timeout=TIMEOUT).close()
        return True
    except urllib.error.HTTPError as e:  # a client without the launcher's route: no push, say so once
        if url not in _warned:
            _warned.add(url)
            log.warning("the SyftBox client at %s does not take sync nudges (%s): files wait for its loop", url, e)
        return False
    except Exception as e:  # one starting or gone: its loop syncs anyway
        log.debug("no sync nudge for %s: %s", url, e)
        return False


def _send_forever() -> None:
    while True:
        _wanted.wait()
        _wanted.clear()  # writes from here on ask for another pass
        url = client_url()
        if url:
            send_once(url)


def nudge() -> None:
    """Ask for a sync pass soon; returns at once."""
    global _sender
    if settings.syft_client_config() is None:
        return
    _wanted.set()
    if _sender is None or not _sender.is_alive():
        with _lock:
            if _sender is None or not _sender.is_alive():
                _sender = threading.Thread(target=_send_forever, name="sync-nudge", daemon=True)
                _sender.start()

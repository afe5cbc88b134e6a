"""Narrow patches to the pinned syft libraries, applied the moment they are imported.

syft-rpc: readers tolerate files that are still being written. The SyftBox client
writes a synced file in place (truncate, then write), and syft-rpc writes request
files the same way, while the receiver reacts to the file's creation. A reader can
then see an empty or partial JSON file; in a prototype 3 of 5 runs lost a data
owner that way. `SyftMessage.load` is the one place every request and response is
read: retry it briefly on a parse error.

Active in every interpreter of an environment where this package is installed: its
`federation-patches.pth` imports `_federation_patches`, whose import hook calls
`apply` here when `syft_rpc.protocol` is first imported. Other programs pay nothing.
"""

from __future__ import annotations

import time

ATTEMPTS = 40
PAUSE = 0.05  # seconds: 40 x 50 ms covers a 1 s sync loop twice
TARGET = "syft_rpc.protocol"


def patch(protocol) -> None:
    message_cls = protocol.SyftMessage
    if getattr(message_cls.load, "_retries_partial_files", False):
        return
    original = message_cls.load.__func__

    def load(cls, path):
        for attempt in range(ATTEMPTS):
            try:
                return original(cls, path)
            except ValueError:  # empty or partial JSON (pydantic's ValidationError is one)
                if attempt == ATTEMPTS - 1:
                    raise
                time.sleep(PAUSE)

    load._retries_partial_files = True
    message_cls.load = classmethod(load)


def apply(module_name: str, module) -> None:
    """Called by the import hook once `module_name` has been imported."""
    if module_name == TARGET:
        patch(module)


def install() -> None:
    """Patch now if syft_rpc is imported already, else when it is (what the .pth file does)."""
    import _federation_patches

    _federation_patches.install()

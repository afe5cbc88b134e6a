"""Make syft-rpc readers tolerate files that are still being written.

The SyftBox client writes a synced file in place (truncate, then write), and
syft-rpc writes request files the same way, while the receiver reacts to the
file's creation. A reader can then see an empty or partial JSON file; in a
prototype 3 of 5 runs lost a data owner that way. `SyftMessage.load` is the one
place every request and response is read: retry it briefly on a parse error.

Installed for every interpreter of the app environment by a .pth file, so the
data owner's jobs (`python main.py`) get it too. It patches syft_rpc lazily, when
syft_rpc.protocol is first imported, so other programs pay nothing.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
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


class _PatchOnImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != TARGET:
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        original_exec = loader.exec_module

        def exec_module(module):
            original_exec(module)
            patch(module)

        loader.exec_module = exec_module
        return spec


def install() -> None:
    if TARGET in sys.modules:
        patch(sys.modules[TARGET])
    elif not any(isinstance(f, _PatchOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport())

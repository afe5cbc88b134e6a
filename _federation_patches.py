"""Import hook for federation.common.syft_patches, run at interpreter start by
`federation-patches.pth` (installed with the federation package).

It imports nothing of the project at start: when a patched module (syft_rpc.protocol,
syft_event.server2, syft_rds.store.store) is first imported, it runs it, then hands it to
`federation.common.syft_patches.apply`.
"""

import importlib.machinery
import sys

TARGETS = ("syft_rpc.protocol", "syft_event.server2", "syft_rds.store.store")


class PatchOnImport:  # a meta path finder; not importlib.abc's, whose import costs every interpreter ~50 ms
    def invalidate_caches(self):  # what importlib.abc.MetaPathFinder would have given it
        pass

    def find_spec(self, name, path, target=None):
        if name not in TARGETS:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        if all(t in sys.modules for t in TARGETS if t != name):
            sys.meta_path.remove(self)  # nothing left to patch: out of the way
        original_exec = spec.loader.exec_module

        def exec_module(module):
            original_exec(module)
            from federation.common.syft_patches import apply

            apply(name, module)

        spec.loader.exec_module = exec_module
        return spec


def install() -> None:
    loaded = [name for name in TARGETS if name in sys.modules]
    if loaded:  # (never at interpreter start: then nothing is imported yet)
        from federation.common.syft_patches import apply

        for name in loaded:
            apply(name, sys.modules[name])
    if any(t not in sys.modules for t in TARGETS) and not any(isinstance(f, PatchOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, PatchOnImport())

"""Import hooks run at interpreter start by `federation-patches.pth` (installed with the
federation package).

For federation.common.syft_patches: it imports nothing of the project at start: when a patched
module (syft_rpc.protocol, syft_event.server2, syft_rds.store.store) is first imported, it runs
it, then hands it to `federation.common.syft_patches.apply`.

And syft-rds imports IPython when it shows something, not when it is imported. Five of its
modules import `HTML` and `display` from `IPython.display` at the top, to call them in methods
that render in a notebook; that import runs IPython's `__init__`, which loads its terminal shell
(prompt_toolkit and more): about a third of what a job process imports ahead (flwr, syft_flwr,
pandas), and a share of every owner's and the DS's start, 18 such processes in an 8-owner run.
Those modules are compiled with that one line importing `federation.common.ipython_display`
instead, whose `HTML` and `display` import IPython's at their first call. A module whose line
is not the pinned version's is imported unchanged. (Deferring IPython's own `__init__` instead
changes the order of IPython's imports and breaks them: its submodules import from the package.)
"""

import importlib.machinery
import sys

IPYTHON_USERS = ("syft_rds.display_utils.jupyter.tabulator", "syft_rds.models.dataset_models",
                 "syft_rds.models.user_code_models", "syft_rds.models.job_models",
                 "syft_rds.models.custom_function_models")
IPYTHON_IMPORT = "from IPython.display import HTML, display\n"
IPYTHON_WHEN_USED = "from federation.common.ipython_display import HTML, display\n"

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


class ImportIPythonWhenUsed:  # a meta path finder, as PatchOnImport
    """syft-rds's modules that show things in a notebook, with their IPython import made lazy."""

    def invalidate_caches(self):
        pass

    def find_spec(self, name, path, target=None):
        if name not in IPYTHON_USERS:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "get_source"):
            return spec
        original_exec = spec.loader.exec_module

        def exec_module(module):
            source = spec.loader.get_source(name)
            if source is None or source.count(IPYTHON_IMPORT) != 1:
                return original_exec(module)  # not the pinned version's line: imported as it is
            code = compile(source.replace(IPYTHON_IMPORT, IPYTHON_WHEN_USED), spec.origin, "exec")
            exec(code, module.__dict__)

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
    if "IPython" not in sys.modules and not any(isinstance(f, ImportIPythonWhenUsed) for f in sys.meta_path):
        sys.meta_path.insert(0, ImportIPythonWhenUsed())

"""Only what pyproject.toml cannot say: the .pth file that applies federation.common.syft_patches
in every interpreter of the environment the package is installed into (a wheel-root file)."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

PTH = "federation-patches.pth"


class BuildPyWithPth(build_py):
    def run(self):
        super().run()
        self.copy_file(PTH, str(Path(self.build_lib) / PTH), preserve_mode=0)


setup(cmdclass={"build_py": BuildPyWithPth})

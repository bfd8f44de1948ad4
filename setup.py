"""Build hook: ship the top-level templates/ folder inside the package as fsctl/templates.

Everything else is in setup.cfg. A source checkout (and an editable install) reads the
templates from <repo>/templates; a wheel carries them in fsctl/templates.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithTemplates(build_py):
    """build_py that also copies templates/ into the built fsctl package."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        src = Path(__file__).resolve().parent / "templates"
        dst = Path(self.build_lib) / "fsctl" / "templates"
        for path in sorted(src.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                target = dst / path.relative_to(src)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)


setup(cmdclass={"build_py": BuildPyWithTemplates})

"""What goes into the package, found rather than listed (the rest of the configuration is pyproject.toml).

The layout is described once, in services/__init__.py: every folder under services/ with an
__init__.py installs as ``lesslabels.<folder>`` (pyproject.toml maps ``lesslabels`` to services/), so
a new package needs no edit here. The .proto files ship once, beside the stubs generated from them:
protos/lesslabels/v1/pool.proto installs as lesslabels/v1/pool.proto, so the folder that holds the
``lesslabels`` package is also the include root for protoc (``import "lesslabels/v1/common.proto"``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from setuptools import find_namespace_packages, setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
PACKAGE = "lesslabels"
SOURCE = "services"  # pyproject.toml: package-dir = {"lesslabels" = "services"}
PROTOS = "protos"


def packages() -> list[str]:
    """lesslabels and every folder below services/: those with an __init__.py and the data folders
    (web/templates, web/static), which setuptools wants declared too."""
    found = find_namespace_packages(SOURCE, exclude=["__pycache__", "*.__pycache__"])
    return [PACKAGE, *(f"{PACKAGE}.{name}" for name in found)]


class build_py_with_protos(build_py):  # noqa: N801 (setuptools' command naming)
    """Package data plus protos/<path>.proto as <path>.proto in the package that holds its stubs."""

    def _proto_data_files(self) -> list[tuple[str, str, str, list[str]]]:
        found: dict[str, list[str]] = {}
        for proto in sorted((ROOT / PROTOS).rglob("*.proto")):
            found.setdefault(proto.parent.relative_to(ROOT / PROTOS).as_posix(), []).append(proto.name)
        data = []
        for folder, names in found.items():
            package = folder.replace("/", ".")
            if package not in (self.packages or ()):
                raise SystemExit(f"{PROTOS}/{folder}/*.proto: no package {package} to ship them in (make proto)")
            build_dir = os.path.join(self.build_lib, *package.split("."))
            data.append((package, os.path.join(PROTOS, *folder.split("/")), build_dir, names))
        return data

    def run(self) -> None:
        # build/lib outlives a build: files from an earlier layout (or a deleted module) would ship again.
        shutil.rmtree(os.path.join(self.build_lib, PACKAGE), ignore_errors=True)
        super().run()

    def _get_data_files(self):
        return super()._get_data_files() + self._proto_data_files()

    def get_data_files_without_manifest(self):
        return super().get_data_files_without_manifest() + self._proto_data_files()


setup(
    packages=packages(),
    cmdclass={"build_py": build_py_with_protos},
    # `pip install -e .` (make setup) links each file into build/__editable__.*/lesslabels/ and puts that
    # folder on sys.path: mypy, editors and other tools that read imports from files find `lesslabels`
    # there, as they would in site-packages. services/__init__.py keeps new modules importable without
    # a reinstall; `make lint` redoes the links when a file is added or removed.
    options={"editable_wheel": {"mode": "strict"}},
)

"""Optional compiled hot path: the modules listed in recombee_cli/build.py (COMPILED_MODULES) are
compiled by Cython, unchanged, where Cython and a working C compiler are present. Where they are
not, or a module does not compile, the install goes on as pure Python and says why: a note on
stderr (`pip install -v` shows it) and in `recombee-cli --version` (from recombee_cli/_build.json).
Everything else is declared in pyproject.toml.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = runpy.run_path(os.path.join(HERE, "recombee_cli", "build.py"))   # the list, without importing the package
PACKAGE = "recombee_cli"
# -O2: within a few per cent of -O3 at run time, compiled in less time; no debug info (-g0).
UNIX_FLAGS = ["-O2", "-g0"]


def note(text: str) -> None:
    print(f"recombee-cli build: {text}", file=sys.stderr, flush=True)


def source_of(name: str) -> str:
    return os.path.join(HERE, *name.split(".")) + ".py"


def extensions() -> list[Extension]:
    found = []
    for name in BUILD["COMPILED_MODULES"]:
        source = os.path.relpath(source_of(name), HERE)
        if os.path.isfile(source_of(name)):
            found.append(Extension(name, [source], optional=True))
        else:
            note(f"{name} is listed in recombee_cli/build.py but {source} does not exist: not compiled")
    return found


class OptionalBuildExt(build_ext):
    """build_ext that compiles what it can and never fails the install for want of a compiler."""

    def finalize_options(self) -> None:
        super().finalize_options()
        if not self.parallel:          # build_ext -j: one compile per core
            self.parallel = os.cpu_count() or 1

    def run(self) -> None:
        self.record: dict = {"compiler": None, "modules": {}, "note": None}
        if not self.extensions:
            self.record["note"] = "no module of recombee_cli/build.py's COMPILED_MODULES exists"
        super().run()                  # builds into build_lib (then copies to the source when editable)
        self.write_record(os.path.join(self.build_lib, PACKAGE))
        if self.inplace:               # editable install / build_ext --inplace: beside the .py files
            folder = self.get_finalized_command("build_py").get_package_dir(PACKAGE)
            self.write_record(folder)
            self.remove_earlier_products(folder)

    def remove_earlier_products(self, folder: str) -> None:
        """Extension modules an earlier build left beside the source (a module since taken off the
        list, or a build that fell back this time): they would not run (build.py runs only what
        the record vouches for), but they should not linger either."""
        from importlib.machinery import EXTENSION_SUFFIXES

        keep = {self.get_ext_filename(name) for name in self.record["modules"]}
        for dirpath, _dirs, files in os.walk(folder):
            for name in files:
                path = os.path.join(dirpath, name)
                relative = os.path.relpath(path, os.path.dirname(folder))
                if name.endswith(tuple(EXTENSION_SUFFIXES)) and relative not in keep:
                    os.remove(path)
                    note(f"removed {relative}, left by an earlier build")

    def build_extensions(self) -> None:
        reason = self.cannot_compile()
        if reason is None:
            try:
                self.extensions = self.cythonize(self.extensions)
            except Exception as exc:   # noqa: BLE001 - any Cython failure means: pure Python
                reason = f"Cython failed ({type(exc).__name__}: {exc})"
        if reason is not None:
            self.fall_back(reason)
            return
        super().build_extensions()
        built = [ext for ext in self.extensions if os.path.isfile(self.get_ext_fullpath(ext.name))]
        failed = sorted({ext.name for ext in self.extensions} - {ext.name for ext in built})
        self.extensions = built        # copy_extensions_to_source and get_outputs: only what exists
        for ext in built:
            self.record["modules"][ext.name] = BUILD["source_digest"](source_of(ext.name))
            depends = BUILD["cimported"](source_of(ext.name))
            if depends:   # it runs compiled only while these do (build.py's _vouched)
                self.record.setdefault("cimports", {})[ext.name] = depends
        if failed:
            self.record["note"] = f"not compiled: {', '.join(failed)}"
            note(self.record["note"])
        note(f"compiled with {self.record['compiler']}: {len(built)} modules "
             f"({', '.join(ext.name for ext in built)})")

    def cannot_compile(self) -> str | None:
        """Why nothing can be compiled here, or None: Cython missing, or no working C compiler."""
        try:
            import Cython
        except ImportError:
            return "Cython is not installed"
        self.record["compiler"] = f"cython {Cython.__version__}"
        with tempfile.TemporaryDirectory() as tmp:
            probe = os.path.join(tmp, "probe.c")
            with open(probe, "w") as f:
                f.write("#include <Python.h>\nint recombee_cli_probe(void) { return Py_IsInitialized(); }\n")
            try:
                include = [p for p in self.include_dirs or []]
                objects = self.compiler.compile([probe], output_dir=tmp, include_dirs=include)
                self.compiler.link_shared_object(objects, os.path.join(tmp, "probe.so"))
            except Exception:          # noqa: BLE001 - CompileError, LinkError, a missing program
                program = (getattr(self.compiler, "compiler_so", None) or ["the C compiler"])[0]
                return f"no working C compiler ({program} failed)"
        return None

    def cythonize(self, exts: list[Extension]) -> list[Extension]:
        from Cython.Build import cythonize

        for ext in exts:
            if self.compiler.compiler_type == "unix":
                ext.extra_compile_args = list(UNIX_FLAGS)
        translated = cythonize(
            exts, build_dir=os.path.join(self.build_temp, "cython"), nthreads=self.parallel or 1, quiet=True,
            compiler_directives={"language_level": 3},
        )
        # Keep setuptools' own Extension objects (finalize_options set them up): only the sources
        # change, from the .py to the C file Cython wrote.
        c_sources = {ext.name: ext.sources for ext in translated}
        for ext in exts:
            ext.sources = list(c_sources[ext.name])
        return exts

    def fall_back(self, reason: str) -> None:
        self.extensions = []
        self.record["modules"] = {}
        self.record["note"] = f"not compiled at install: {reason}"
        note(f"{self.record['note']}; installing pure Python (the same behaviour, slower)")

    def write_record(self, folder: str) -> None:
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, BUILD["RECORD_NAME"]), "w", encoding="utf-8") as f:
            json.dump(self.record, f, indent=1, sort_keys=True)
            f.write("\n")


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})

"""The chat hot path, compiled: an opt-in build that runs the same source 15-24 % cheaper per round trip.

``scripts/build-accel`` (``python -m users.accel build``) copies :data:`HOT_MODULES` to ``.accel/`` and compiles them
there with Cython (the plain ``.py`` files, no source change; needs ``pip install cython``, a C compiler and the
Python headers). ``.accel/manifest.json`` records each source's SHA-256 and the Python it was built for.

:func:`install` (run when ``locustfile.py`` imports this module, before any chat module) puts a finder in front of
Python's import system that loads a compiled module only while its source is unchanged: a module whose ``.py`` was
edited since the build is imported from the ``.py`` as usual, with a warning naming it, so an edit is never hidden
by a stale build. Without a build nothing changes. ``WS_SUITE_ACCEL=off`` turns it off; ``WS_SUITE_ACCEL_DIR``
points at another build directory. Measured with ``python -m bench.compiled_ab`` (docs/benchmarks.md).

Usage::

    scripts/build-accel          # once, and again after editing a hot module (the warning says which)
    locust -f locustfile.py ...  # logs "chat hot path: compiled (5 modules)" when the build is used
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from locust import events

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
HOT_MODULES = ("users.ws_codec", "tasks.timeline", "users.sample_sink", "users.ws_session", "users.ws_client")
"""What a chat round trip runs through (the reader, the timeline, the codec, the sample path)."""
MANIFEST = "manifest.json"

_notes: list[tuple[int, str]] = []
"""What :func:`install` found, logged at Locust's ``init`` (logging is set up only after the locustfile's import)."""


def build_dir() -> Path:
    return Path(os.environ.get("WS_SUITE_ACCEL_DIR") or ROOT / ".accel")


def _source(name: str, root: Path = ROOT) -> Path:
    return root.joinpath(*name.split(".")).with_suffix(".py")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _python_tag() -> str:
    return f"{sys.implementation.cache_tag}-{sysconfig.get_config_var('EXT_SUFFIX')}"


class CompiledFinder(importlib.abc.MetaPathFinder):
    """Finds the fresh compiled modules of one build (``modules``: name -> extension file)."""

    def __init__(self, modules: dict[str, Path]) -> None:
        self.modules = modules

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        so = self.modules.get(fullname)
        if so is None:
            return None
        loader = importlib.machinery.ExtensionFileLoader(fullname, str(so))
        return importlib.util.spec_from_file_location(fullname, so, loader=loader)


def fresh_modules(directory: Path, root: Path = ROOT) -> tuple[dict[str, Path], list[str]]:
    """The modules of the build in ``directory`` that match their source now, and why each other one is not used."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, []
    except (OSError, ValueError) as exc:
        return {}, [f"{directory / MANIFEST} is unreadable ({exc}): run scripts/build-accel again"]
    if manifest.get("python") != _python_tag():
        return {}, [f"the build in {directory} is for {manifest.get('python')}, this Python is {_python_tag()}: "
                    "run scripts/build-accel again"]
    fresh: dict[str, Path] = {}
    skipped: list[str] = []
    for name, entry in (manifest.get("modules") or {}).items():
        so = directory / str(entry.get("file", ""))
        src = _source(name, root)
        if not so.is_file():
            skipped.append(f"{name}: {so} is missing")
        elif not src.is_file() or _sha256(src) != entry.get("sha256"):
            skipped.append(f"{name}: {src.relative_to(root)} changed since the build, so it runs as Python")
        else:
            fresh[name] = so
    return fresh, skipped


def install(directory: Path | None = None, root: Path = ROOT) -> list[str]:
    """Use the fresh compiled modules of the build from now on; their names ([] without a build, or when off).
    A module already imported stays as it is (it is not reloaded)."""
    if os.environ.get("WS_SUITE_ACCEL", "").strip().lower() in ("off", "0", "no", "false"):
        return []
    if any(isinstance(f, CompiledFinder) for f in sys.meta_path):
        return []
    fresh, skipped = fresh_modules(directory or build_dir(), root)
    notes = [(logging.WARNING, f"chat hot path: {why}") for why in skipped]
    for name in [name for name in fresh if name in sys.modules]:
        notes.append((logging.WARNING, f"chat hot path: {name} was imported before the compiled build was "
                                       "installed; it runs as Python"))
        del fresh[name]
    if fresh:
        sys.meta_path.insert(0, CompiledFinder(fresh))
        notes.append((logging.INFO, f"chat hot path: compiled ({len(fresh)} modules: {', '.join(sorted(fresh))})"))
    _notes.extend(notes)
    return sorted(fresh)


@events.init.add_listener
def _log_notes(**_kw: Any) -> None:
    while _notes:
        level, text = _notes.pop(0)
        logger.log(level, text)


def missing_tools() -> str | None:
    """What the build needs and this machine lacks, as one sentence; None when nothing is missing."""
    if importlib.util.find_spec("Cython") is None:
        return f"Cython is not installed: {sys.executable} -m pip install cython"
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        return f"no C compiler ({cc!r} is not on PATH): install gcc (Debian: apt-get install gcc)"
    header = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not header.exists():
        return f"the Python headers are missing ({header}): install the python3-dev package of this Python"
    return None


def build(directory: Path | None = None, root: Path = ROOT, modules: Sequence[str] = HOT_MODULES) -> dict[str, str]:
    """Compile ``modules`` (default :data:`HOT_MODULES`) of ``root`` into ``directory``; name -> extension file."""
    why = missing_tools()
    if why:
        raise RuntimeError(f"cannot build the compiled hot path: {why}")
    out = directory or build_dir()
    if out.exists() and any(out.iterdir()):
        if not (out / MANIFEST).is_file():  # never delete a directory this did not build
            raise RuntimeError(f"cannot build the compiled hot path into {out}: it holds files but no {MANIFEST}; "
                               "give an empty or new directory (WS_SUITE_ACCEL_DIR)")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    entries: dict[str, dict[str, str]] = {}
    sources = []
    for name in modules:
        src = _source(name, root)
        rel = Path(*name.split(".")).with_suffix(".py")
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        init = out / rel.parent / "__init__.py"
        if not init.exists():  # Cython names a module after its package: users.ws_session, not ws_session
            init.write_text("", encoding="utf-8")
        shutil.copyfile(src, out / rel)
        entries[name] = {"sha256": _sha256(out / rel)}  # what is compiled: an edit during the build reads as stale
        sources.append(str(rel))
    r = subprocess.run([sys.executable, "-m", "Cython.Build.Cythonize", "-i", "-3", "-j", str(os.cpu_count() or 1),
                        *sources], cwd=out, capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        raise RuntimeError(f"cythonize failed (exit {r.returncode}):\n{(r.stdout + r.stderr)[-3000:]}")
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    for name, entry in entries.items():
        so = Path(*name.split(".")).with_suffix("")
        so = so.with_name(so.name + suffix)
        if not (out / so).is_file():
            raise RuntimeError(f"cythonize built no {so} for {name}")
        entry["file"] = str(so)
    (out / MANIFEST).write_text(json.dumps({"python": _python_tag(), "modules": entries}, indent=1),
                                encoding="utf-8")
    return {name: e["file"] for name, e in entries.items()}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args != ["build"]:
        print("usage: python -m users.accel build   (compiles the chat hot path into .accel/; see the module doc)",
              file=sys.stderr)
        return 2
    try:
        built = build()
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"compiled {len(built)} modules into {build_dir()}: {', '.join(built)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
else:  # imported (locustfile.py does it first): use a fresh build from now on
    install()

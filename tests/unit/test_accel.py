"""users.accel's choice of what runs compiled: only a build whose recorded source hash matches the source now, built
for this Python; anything else runs as Python and is named in a warning. No compiler here: fake builds in tmp_path
(tests/integration/test_accel.py builds and runs a real one)."""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import shutil
import sys
from pathlib import Path

import pytest

from users import accel


def _tree(tmp_path: Path) -> tuple[Path, Path]:
    """A source root with users/ws_codec.py and tasks/timeline.py, and a build of both that matches it."""
    root, build = tmp_path / "root", tmp_path / "build"
    modules = {}
    for name in ("users.ws_codec", "tasks.timeline"):
        src = root.joinpath(*name.split(".")).with_suffix(".py")
        src.parent.mkdir(parents=True, exist_ok=True)
        src.write_text(f"NAME = {name!r}\n", encoding="utf-8")
        so = Path(*name.split(".")).with_suffix(".fake.so")
        (build / so).parent.mkdir(parents=True, exist_ok=True)
        (build / so).write_bytes(b"")
        modules[name] = {"sha256": accel._sha256(src), "file": str(so)}
    (build / accel.MANIFEST).write_text(json.dumps({"python": accel._python_tag(), "modules": modules}))
    return root, build


def test_no_build_means_nothing_compiled_and_nothing_said(tmp_path: Path) -> None:
    assert accel.fresh_modules(tmp_path / "none", tmp_path) == ({}, [])


def test_a_matching_build_is_used_module_by_module(tmp_path: Path) -> None:
    root, build = _tree(tmp_path)
    fresh, skipped = accel.fresh_modules(build, root)
    assert skipped == []
    assert fresh == {"users.ws_codec": build / "users/ws_codec.fake.so", "tasks.timeline": build / "tasks/timeline.fake.so"}


def test_an_edited_source_runs_as_python_and_is_named(tmp_path: Path) -> None:
    root, build = _tree(tmp_path)
    (root / "tasks/timeline.py").write_text("NAME = 'edited'\n", encoding="utf-8")
    fresh, skipped = accel.fresh_modules(build, root)
    assert list(fresh) == ["users.ws_codec"]
    assert skipped == ["tasks.timeline: tasks/timeline.py changed since the build, so it runs as Python"]


def test_a_missing_extension_or_another_python_or_a_broken_manifest_is_named(tmp_path: Path) -> None:
    root, build = _tree(tmp_path)
    (build / "users/ws_codec.fake.so").unlink()
    fresh, skipped = accel.fresh_modules(build, root)
    assert list(fresh) == ["tasks.timeline"] and "users.ws_codec: " in skipped[0] and "is missing" in skipped[0]
    manifest = json.loads((build / accel.MANIFEST).read_text())
    manifest["python"] = "cpython-39-.cpython-39-x86_64-linux-gnu.so"
    (build / accel.MANIFEST).write_text(json.dumps(manifest))
    fresh, skipped = accel.fresh_modules(build, root)
    assert fresh == {} and "this Python is" in skipped[0] and "run scripts/build-accel again" in skipped[0]
    (build / accel.MANIFEST).write_text("{not json")
    fresh, skipped = accel.fresh_modules(build, root)
    assert fresh == {} and "unreadable" in skipped[0] and "scripts/build-accel" in skipped[0]


def test_install_skips_modules_already_imported_and_off_means_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    root, build = _tree(tmp_path)
    importlib.import_module("users.ws_codec")
    monkeypatch.setenv("WS_SUITE_ACCEL", "off")  # (the conftest's setting for every test)
    assert accel.install(build, root) == []
    monkeypatch.setenv("WS_SUITE_ACCEL", "on")
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))  # whatever install adds goes with the test
    monkeypatch.setitem(sys.modules, "tasks.timeline", sys.modules.get("tasks.timeline") or object())
    monkeypatch.setattr(accel, "_notes", [])
    assert accel.install(build, root) == []  # both were imported already: nothing to install
    assert not any(isinstance(f, accel.CompiledFinder) for f in sys.meta_path)
    with caplog.at_level(logging.WARNING, logger="users.accel"):
        accel._log_notes()
    assert "users.ws_codec was imported before the compiled build was installed; it runs as Python" in caplog.text


def test_the_finder_answers_only_for_its_modules(tmp_path: Path) -> None:
    finder = accel.CompiledFinder({"users.ws_codec": tmp_path / "ws_codec.fake.so"})
    assert finder.find_spec("users.ws_session") is None
    spec = finder.find_spec("users.ws_codec")
    assert spec is not None and spec.origin == str(tmp_path / "ws_codec.fake.so")


@pytest.mark.parametrize("what", ["cython", "compiler", "headers"])
def test_a_missing_build_tool_is_named_with_what_to_do(monkeypatch: pytest.MonkeyPatch, what: str) -> None:
    find_spec, which = importlib.util.find_spec, shutil.which
    monkeypatch.setattr(accel.importlib.util, "find_spec",
                        lambda name: None if (what == "cython" and name == "Cython") else find_spec(name) or object())
    monkeypatch.setattr(accel.shutil, "which", lambda cmd: None if what == "compiler" else which(cmd) or cmd)
    monkeypatch.setattr(accel.Path, "exists", lambda self: what != "headers")
    why = accel.missing_tools()
    assert why is not None
    assert {"cython": "pip install cython", "compiler": "install gcc", "headers": "python3-dev"}[what] in why, why
    if what == "compiler":
        with pytest.raises(RuntimeError, match="cannot build the compiled hot path: no C compiler"):
            accel.build(Path("/nonexistent/never-created"))


def test_a_build_never_deletes_a_directory_it_did_not_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accel, "missing_tools", lambda: None)
    keep = tmp_path / "precious"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(RuntimeError, match="holds files but no manifest.json; give an empty or new directory"):
        accel.build(keep)
    assert (keep / "notes.txt").read_text(encoding="utf-8") == "mine"

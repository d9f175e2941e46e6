"""docs/options.md is generated from the parsers: this fails when an option changed and the page was not
regenerated (or when someone edited the page by hand)."""

from __future__ import annotations

import difflib
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGE = REPO / "docs" / "options.md"
GENERATOR = ".venv/bin/python -m config.options_reference --write"


@pytest.mark.timeout(60)
def test_options_page_matches_the_parsers() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCUST_", "TARGET_"))}
    res = subprocess.run([sys.executable, "-m", "config.options_reference"], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=50, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, f"the generator failed:\n{res.stderr}"
    generated = res.stdout
    on_disk = PAGE.read_text(encoding="utf-8") if PAGE.exists() else ""
    if generated != on_disk:
        diff = "".join(difflib.unified_diff(on_disk.splitlines(True), generated.splitlines(True),
                                            "docs/options.md", "generated", n=1))
        pytest.fail(f"docs/options.md is out of date with the option parsers; run the generator: {GENERATOR}\n"
                    f"{diff[:4000]}")

"""The suite's configuration: SLA threshold profiles (``config/<name>.toml``, loaded by :mod:`sla_checks.profiles`), the option
layer (:mod:`config.options`, :mod:`config.durations`, :mod:`config.validate`) and the error root
(:mod:`config.errors`). Pure: nothing here imports Locust.

The package itself imports nothing, so any module may import ``config.errors`` without loading the profile loader; it
imports no other package of the suite (``config`` is the bottom layer).
"""

from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent
"""The folder of the bundled profiles."""

"""The suite keeps its state in ``sla_checks.state.state_of(environment)``, never as attributes hung on Locust's
``Environment``: read from the source with ``ast``, and seen on a real environment after every plugin's ``init``."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import locust  # noqa: F401  (first: locust monkey-patches gevent)
from locust.env import Environment

from sla_checks.counters import CHAT_SENT, count, in_flight_at_stop
from sla_checks.gauges import record_gauge
from sla_checks.state import SuiteState, state_of
from tests.unit.test_layering import MODULES

# Locust's own attributes the suite may set (a scenario sets the shape and the user classes; the verdict the exit code)
LOCUST_ATTRIBUTES = frozenset(vars(Environment()))
ENVIRONMENT_NAMES = frozenset({"environment", "env"})


def _is_environment(node: ast.expr) -> bool:
    """``environment`` / ``env`` / ``self.environment`` / ``x.env``."""
    if isinstance(node, ast.Name):
        return node.id in ENVIRONMENT_NAMES
    return isinstance(node, ast.Attribute) and node.attr in ENVIRONMENT_NAMES


def foreign_attributes(tree: ast.AST) -> list[tuple[int, str]]:
    """``(line, attribute)`` of every attribute the code sets on an environment that Locust does not define."""
    found = []
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "setattr"
              and node.args and _is_environment(node.args[0])):
            name = node.args[1].value if isinstance(node.args[1], ast.Constant) else "<dynamic>"
            found.append((node.lineno, str(name)))
        for target in targets:
            for part in ast.walk(target):
                if (isinstance(part, ast.Attribute) and _is_environment(part.value)
                        and part.attr not in LOCUST_ATTRIBUTES):
                    found.append((part.lineno, part.attr))
    return found


def test_no_module_sets_an_attribute_of_its_own_on_the_environment() -> None:
    bad = [f"{path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}:{line}: environment.{attr}"
           for name, path in MODULES.items() if not name.startswith(("bench", "reference_backend"))
           for line, attr in foreign_attributes(ast.parse(path.read_text(encoding="utf-8")))]
    assert bad == []


def test_the_scan_finds_an_undeclared_attribute() -> None:
    tree = ast.parse("environment.sla = plugin\nself.environment.chat_settings = s\nsetattr(env, 'x', 1)\n"
                     "environment.shape_class = None\nenvironment.process_exit_code = 3\n")
    assert foreign_attributes(tree) == [(1, "sla"), (2, "chat_settings"), (3, "x")]


def test_a_run_leaves_no_attribute_of_the_suite_on_the_environment() -> None:
    from locust.argument_parser import get_parser

    import locustfile  # noqa: F401  (registers every plugin's options and listeners)

    options = get_parser().parse_args(["-f", "locustfile.py", "--headless", "--sla-warmup", "0"])
    env = Environment(user_classes=[], events=locust.events, parsed_options=options, host="ws://127.0.0.1:9")
    runner = env.create_local_runner()
    try:
        env.events.init.fire(environment=env, runner=runner, web_ui=None)
        record_gauge(env, "locust:cpu_percent", 1.0)
        count(env, CHAT_SENT, 2)
        in_flight_at_stop(env, [(10.0, 30000.0)])
        state = state_of(env)
        assert isinstance(state, SuiteState) and state.sla is not None  # the SLA plugin attached itself
        assert state.resource_monitor is not None and state.probe_config is not None
        assert set(vars(env)) <= LOCUST_ATTRIBUTES, set(vars(env)) - LOCUST_ATTRIBUTES
    finally:
        runner.quit()


def test_state_is_per_environment_and_goes_with_it() -> None:
    import gc
    import weakref

    a, b = Environment(), Environment()
    state_of(a).pending_counts["x"] = 1
    assert state_of(b).pending_counts == {} and state_of(a) is state_of(a)
    gone = weakref.ref(state_of(b))
    del b
    gc.collect()
    assert gone() is None


def test_the_scenario_and_sla_plugins_check_their_options_before_the_users_do() -> None:
    """Init listeners run in the order the modules registered them: a bad ``--scenario-*`` / ``--sla-*`` value must
    stop the run with its own line before the chat and probe plugins check credentials and connectivity. A fresh
    interpreter: this process has imported users/ for other tests already."""
    code = ("import locust, locustfile\n"
            "print(' '.join(h.__module__ for h in locust.events.init._handlers))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parents[2])
    assert res.returncode == 0, res.stderr
    order = res.stdout.split()
    assert order.index("scenarios.plugin") < order.index("users.ws_options")
    assert order.index("sla_checks.plugin") < order.index("users.ws_options")
    assert order.index("scenarios.plugin") < order.index("users.probe_options")


def test_importing_one_user_module_loads_no_other_plugin() -> None:
    """``users/__init__.py`` imports nothing: ``import users.<module>`` registers only that module's options and
    listeners, so it cannot move the chat and probe plugins' ``init`` listeners ahead of the scenario plugin's."""
    code = ("import sys, locust, users.ws_codec, users.probe_base\n"
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('users.'))))\n"
            "print(' '.join(h.__module__ for h in locust.events.init._handlers))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parents[2])
    assert res.returncode == 0, res.stderr
    loaded, listeners = (res.stdout.splitlines() + ["", ""])[:2]
    for plugin in ("users.chat", "users.ws_options", "users.probe_options", "users.redis_probe", "users.health"):
        assert plugin not in loaded.split(), loaded
    assert not [m for m in listeners.split() if m.startswith("users.")], listeners

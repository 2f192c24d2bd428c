"""subinterp_rs.check (issue #19, item 2): which modules load in subinterpreters, each attempt
in a child process; and the ImportError our interpreters raise for a module that refuses."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest
from _helpers import run_python
from subinterp_rs import ExecutionFailed, InterpreterConfig, Subinterpreter
from subinterp_rs.check import Result, all_modules, check, main

_CRASHY = """
import os, signal
from subinterp_rs import Subinterpreter
if Subinterpreter.current().id != Subinterpreter.main().id:
    os.kill(os.getpid(), signal.SIGSEGV)
"""


@pytest.fixture
def modules_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "crashy_inside.py").write_text(_CRASHY)
    (tmp_path / "broken_everywhere.py").write_text("raise RuntimeError('broken on purpose')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    return tmp_path


def test_loads_and_refuses() -> None:
    pytest.importorskip("psutil")
    json_result, psutil_result = check(["json", "psutil"])
    assert json_result == Result("json", "isolated", "loads")
    assert psutil_result.status == "refuses"
    assert psutil_result.reason is not None and "does not support loading" in psutil_result.reason
    assert psutil_result.legacy_loads is True
    assert psutil_result.python == sys.version.split()[0]
    (legacy,) = check(["psutil"], config="legacy")
    assert legacy.status == "loads" and legacy.legacy_loads is None


def test_loads_without_accelerators() -> None:
    yaml = pytest.importorskip("yaml")
    if not getattr(yaml, "__with_libyaml__", False):
        pytest.skip("PyYAML without libyaml here")
    (result,) = check(["yaml"])
    assert result.status == "loads-without-accelerators", result
    assert "yaml._yaml" in result.missing_extensions


def test_crashes_and_broken_modules(modules_dir: Path) -> None:
    crashy, broken = check(["crashy_inside", "broken_everywhere"])
    assert crashy.status == "crashes" and crashy.signal == signal.SIGSEGV, crashy
    assert crashy.reason == "killed by SIGSEGV"
    assert broken.status == "refuses" and broken.legacy_loads is None
    assert broken.reason == "in main too: RuntimeError: broken on purpose"


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="unknown config 'shared'"):
        check(["json"], config="shared")  # type: ignore[arg-type]
    with pytest.raises(ModuleNotFoundError, match="no module named 'no_such_module_x'"):
        check(["json", "no_such_module_x"])
    with pytest.raises(ValueError, match="non-empty str"):
        check([""])
    with pytest.raises(ValueError, match="timeout"):
        check(["json"], timeout=0)
    with pytest.raises(ValueError, match="jobs"):
        check(["json"], jobs=0)
    with pytest.raises(SystemExit) as exited:
        main(["--config", "shared", "json"])
    assert exited.value.code == 2
    with pytest.raises(SystemExit) as exited:
        main(["no_such_module_x"])
    assert exited.value.code == 2


def run_check(*args: str) -> str:
    """``python -m subinterp_rs.check ARGS``'s stdout (it must exit 0)."""
    return run_python("-m", "subinterp_rs.check", *args, timeout=120, check=True).stdout


def test_command_line_json_and_table() -> None:
    rows = json.loads(run_check("--json", "json", "math"))
    assert [(r["module"], r["status"], r["config"]) for r in rows] == [
        ("json", "loads", "isolated"),
        ("math", "loads", "isolated"),
    ]
    table = run_check("--config", "legacy", "json")
    assert "config legacy" in table and "json" in table and "loads" in table


def test_all_modules_lists_the_environment() -> None:
    names = all_modules()
    assert "json" in names and "subinterp_rs" in names and "sys" in names
    assert "antigravity" not in names and "this" not in names
    assert names == sorted(names)


def test_import_error_inside_names_the_module_and_what_to_do() -> None:
    pytest.importorskip("psutil")
    with Subinterpreter.create() as si:
        with pytest.raises(ExecutionFailed) as failed:
            si.exec("import psutil")
        msg = failed.value.excinfo.msg
        assert "psutil._psutil_linux" in msg or "psutil" in msg
        assert "InterpreterConfig.legacy()" in msg and "process pool" in msg, msg
        assert "python -m subinterp_rs.check psutil" in msg
        si.exec("import json")  # other imports unchanged
    with Subinterpreter.create(InterpreterConfig.legacy()) as si:
        si.exec("import psutil")

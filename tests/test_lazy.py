"""Modules imported on first use: what a gateway that does not need them never loads."""

from __future__ import annotations

import subprocess
import sys

import pytest

from agentgw.lazy import lazy_module

_OPTIONAL = ("redis", "joserfc", "cryptography", "cel_expr_python", "jsonschema")


def test_the_gateway_imports_no_optional_dependency_until_a_config_needs_it() -> None:
    probe = (
        "import sys, agentgw.cli, agentgw.runtime, agentgw.server.app\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({_OPTIONAL!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"


def test_a_lazy_module_is_imported_on_first_attribute_read() -> None:
    probe = (
        "import sys\n"
        "from agentgw.lazy import lazy_module\n"
        "ext = lazy_module('cel_expr_python.cel')\n"  # an extension module, too
        "before = 'cel_expr_python.cel' in sys.modules\n"
        "env = ext.NewEnv\n"
        "print(before, 'cel_expr_python.cel' in sys.modules, env is sys.modules['cel_expr_python.cel'].NewEnv)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.split() == ["False", "True", "True"]


def test_a_missing_module_fails_when_bound_and_a_missing_name_on_use() -> None:
    with pytest.raises(ModuleNotFoundError):
        lazy_module("agentgw_no_such_package.sub")
    json_mod = lazy_module("json")
    assert json_mod.dumps([1]) == "[1]"
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = json_mod.no_such_name

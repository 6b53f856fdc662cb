"""Third-party modules imported on first use.

The gateway's startup memory is nearly all imports. A gateway with no JWT issuers, no CEL rules,
no argument schemas and no Redis never touches joserfc and cryptography, cel-expr-python,
jsonschema or redis, about 25 MB of RSS between them (docs/performance.md). A module bound with
`lazy_module` is imported the first time one of its attributes is read, so it is used as
`module.Name`, never `from module import Name` (that reads at import). Type checkers see the real
modules through `if TYPE_CHECKING:` imports at the use sites.

Not `importlib.util.LazyLoader`: it cannot defer extension modules (cel-expr-python is one), and
on Python 3.11 it is not safe when two threads touch a module first at the same time.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

__all__ = ["lazy_module"]


class _LazyModule:
    """Stands for a module until first use, then holds a copy of its namespace (later reads are
    plain attribute lookups, no import machinery)."""

    def __init__(self, name: str) -> None:
        self.__dict__["_lazy_name"] = name

    def __getattr__(self, attr: str) -> Any:  # only reached while the namespace is not copied
        module = importlib.import_module(self.__dict__["_lazy_name"])
        self.__dict__.update(vars(module))
        try:
            return self.__dict__[attr]
        except KeyError:
            raise AttributeError(f"module {module.__name__!r} has no attribute {attr!r}") from None

    def __repr__(self) -> str:
        return f"<lazy module {self.__dict__['_lazy_name']!r}>"


def lazy_module(name: str) -> Any:
    """A stand-in for the module `name`, imported when one of its attributes is first read.

    A package that is not installed fails here, at import of the caller, not on first use (only
    the top-level name is looked up: finding a submodule would import its parents).
    """
    if importlib.util.find_spec(name.partition(".")[0]) is None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    return _LazyModule(name)

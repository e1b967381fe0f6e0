"""Pre-load the Cronium SDK: make `cronium` a builtin name in every Python of a run.

Python imports `sitecustomize` at start-up from PYTHONPATH, which Cronium points at this
directory. The name is a lazy proxy: nothing is imported, read or connected until the
script first uses `cronium.<something>`, so Pythons that never use the SDK (pip, tools,
a plain `python3` outside Cronium) pay nothing and cannot break. On first use the proxy
imports the real module (cronium.py next to this file) and replaces itself with it.

A sitecustomize that this one shadows (e.g. the distribution's) is still run.
"""

from __future__ import annotations

import builtins
import os
import sys

# Not `typing` or `contextlib`: importing them would add ~10 ms to every Python start.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_HERE = os.path.dirname(os.path.abspath(__file__))


def _load() -> Any:
    module = sys.modules.get("cronium")
    if module is None or not hasattr(module, "get_variable"):
        import importlib.util

        spec = importlib.util.spec_from_file_location("cronium", os.path.join(_HERE, "cronium.py"))
        if spec is None or spec.loader is None:  # pragma: no cover - the file is always there
            raise ImportError("the Cronium SDK (cronium.py) is missing next to sitecustomize.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["cronium"] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop("cronium", None)
            raise
    if getattr(builtins, "cronium", None) is _proxy:
        builtins.cronium = module  # type: ignore[attr-defined]
    return module


class _LazyCronium:
    """Stands for the `cronium` module until the script first touches it."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        return getattr(_load(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(_load(), name, value)

    def __dir__(self) -> list[str]:
        return dir(_load())

    def __repr__(self) -> str:
        return "<module 'cronium' (Cronium SDK, not loaded yet)>"


_proxy = _LazyCronium()


def _install() -> None:
    if not hasattr(builtins, "cronium"):
        builtins.cronium = _proxy  # type: ignore[attr-defined]


def _run_shadowed_sitecustomize() -> None:
    """Run the next sitecustomize.py on sys.path: Python only imports the first one."""
    for entry in sys.path:
        folder = os.path.abspath(entry or os.curdir)
        if folder == _HERE:
            continue
        candidate = os.path.join(folder, "sitecustomize.py")
        if os.path.isfile(candidate):
            import importlib.util

            name = "_cronium_shadowed_sitecustomize"
            spec = importlib.util.spec_from_file_location(name, candidate)
            if spec is not None and spec.loader is not None:
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
            return


# Never break a script's start-up, whatever happens above.
try:  # noqa: SIM105 - contextlib costs start-up time
    _install()
except Exception:
    pass
try:  # noqa: SIM105
    _run_shadowed_sitecustomize()
except Exception:
    pass

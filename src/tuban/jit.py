"""numba, when installed: kernels compiled on first use, with the numpy code as reference and fallback.

numba comes with the ``detect`` extra; without it (or with ``TUBAN_FUSED=0``) every caller runs its numpy
reference instead, with the same results. Kernels are compiled with ``cache=True`` (next to the sources,
or in numba's user cache); where neither location is writable (a read-only install) they are compiled in
memory once per process.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["Helpers", "Kernel", "available", "enabled", "numba_module"]

_LOCK = threading.RLock()
_numba: Any = None  # the numba module once imported (lazily: importing it takes ~0.5 s)
_missing = False


def enabled() -> bool:
    """``TUBAN_FUSED`` is not ``0``/``false``/``no``/``off``."""
    return os.environ.get("TUBAN_FUSED", "1").strip().lower() not in ("0", "false", "no", "off")


def numba_module() -> Any:
    """numba, imported on first use; ``None`` when it is not installed."""
    global _numba, _missing
    if _numba is None and not _missing:
        with _LOCK:
            try:
                import numba
            except ImportError:  # pragma: no cover - exercised only without the extra
                _missing = True
                return None
            _numba = numba
    return _numba


def available() -> bool:
    """True when kernels can run (numba importable and ``TUBAN_FUSED`` not ``0``)."""
    return enabled() and numba_module() is not None


class Helpers:
    """Plain functions of a module that its kernels call: replaced in the module's namespace by numba
    functions (``inline`` ones inlined into their callers), once per process, before the first of its
    kernels compiles. Under the one lock of this module, so threads arriving together compile them once."""

    def __init__(self, namespace: dict[str, Any], *, inline: tuple[str, ...] = (), called: tuple[str, ...] = ()
                 ) -> None:
        self.namespace, self.inline, self.called = namespace, inline, called
        self._done = False

    def compile(self) -> bool:
        """Compile the helpers (once); ``False`` when numba is not installed."""
        if self._done:
            return True
        nb = numba_module()
        if nb is None:
            return False
        with _LOCK:
            if not self._done:
                for name in self.inline:
                    self.namespace[name] = nb.njit(nogil=True, inline="always")(self.namespace[name])
                for name in self.called:
                    self.namespace[name] = nb.njit(nogil=True)(self.namespace[name])
                self._done = True
        return True


class Kernel:
    """A plain Python function compiled by numba (``nogil``, no fastmath) on first call, after its module's
    :class:`Helpers` when it has some."""

    def __init__(self, fn: Callable[..., Any], helpers: Helpers | None = None) -> None:
        self.fn = fn
        self.helpers = helpers
        self._disp: Any = None

    def _compile(self, cache: bool) -> Any:
        if self.helpers is not None:
            self.helpers.compile()
        return numba_module().njit(parallel=False, fastmath=False, cache=cache, nogil=True)(self.fn)

    def __call__(self, *args: Any) -> Any:
        if self._disp is None:
            with _LOCK:  # threads calling a kernel for the first time at once compile it once
                if self._disp is None:
                    try:
                        self._disp = self._compile(True)
                    except RuntimeError:  # "no locator available": no writable cache directory
                        self._disp = self._compile(False)
        try:
            return self._disp(*args)
        except OSError:  # the cache file could not be written (read-only or full disk): compile in memory
            self._disp = self._compile(False)
            return self._disp(*args)

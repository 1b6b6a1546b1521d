"""First-use compilation of the Numba kernels, announced.

The Numba backend compiles each kernel the first time it is called with a new
argument signature; ``cache=True`` stores the machine code next to the module,
so later processes load it in well under a second.  The first compile in a
fresh environment takes seconds (up to about 15 s for the cosine kernel on a
2-core machine).  So that this pause is not mistaken for a hang, the first
call of each kernel in a process compiles (or loads) it before running it, and
when that takes longer than :data:`NOTICE_AFTER_S` a one-line message goes to
the ``fastrec`` logger at WARNING level, which Python prints on stderr unless
the application configures logging.
"""

from __future__ import annotations

import inspect
import logging
import threading
from types import ModuleType
from typing import Any

logger = logging.getLogger("fastrec")

NOTICE_AFTER_S = 2.0  # a cache load takes well under this; a compile takes longer


def _notice(qualified: str) -> None:
    logger.warning(
        "fastrec: compiling the Numba kernel %s on its first use in this environment "
        "(up to about 15 s, once; later runs load it from Numba's cache)",
        qualified,
    )


class _AnnouncedKernel:
    """A Numba dispatcher whose first compile in this process is announced when slow."""

    def __init__(self, dispatcher: Any, qualified: str) -> None:
        self._dispatcher = dispatcher
        self._qualified = qualified
        self._lock = threading.Lock()
        self.__doc__ = dispatcher.__doc__
        self.__name__ = getattr(dispatcher, "__name__", qualified)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self._dispatcher.signatures:
            positional = self._positional(args, kwargs)
            if positional is not None:
                self._compile_for(positional)
        return self._dispatcher(*args, **kwargs)

    def _positional(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...] | None:
        """The arguments of a call in parameter order; None when they do not fit the kernel."""
        if not kwargs:
            return args
        try:
            bound = inspect.signature(self._dispatcher.py_func).bind(*args, **kwargs)
        except (TypeError, ValueError):  # the call itself will raise Numba's message
            return None
        bound.apply_defaults()
        return bound.args

    def _compile_for(self, args: tuple[Any, ...]) -> None:
        with self._lock:  # one thread compiles; the others wait for it rather than repeat it
            if self._dispatcher.signatures:
                return
            try:
                signature = tuple(self._dispatcher.typeof_pyval(a) for a in args)
            except Exception:  # an argument Numba cannot type: the call itself will say so
                return
            timer = threading.Timer(NOTICE_AFTER_S, _notice, (self._qualified,))
            timer.daemon = True
            timer.start()
            try:
                self._dispatcher.compile(signature)
            except Exception:  # a typing error: let the real call raise it with Numba's message
                pass
            finally:
                timer.cancel()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._dispatcher, name)


class AnnouncedModule:
    """A Numba kernel module whose dispatchers announce a slow first compile."""

    def __init__(self, module: ModuleType, family: str) -> None:
        self._module = module
        self._family = family
        self._wrapped: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._module, name)
        from numba.core.dispatcher import Dispatcher

        if not isinstance(value, Dispatcher):
            return value
        wrapped = self._wrapped.get(name)
        if wrapped is None:
            wrapped = self._wrapped.setdefault(name, _AnnouncedKernel(value, f"{self._family}.{name}"))
        return wrapped

"""Sharing one fitted model between threads: readers run together, writers alone.

A web service answers requests from many threads with one model, and may fold new
users in while it does.  Every model method is marked :func:`reads` or
:func:`writes`; a per-model :class:`ReadWriteLock` lets any number of readers run
at once (the kernels release the GIL, so they do run in parallel) and gives a
writer the model to itself, so a reader never sees a half-updated model and two
writers never lose each other's update.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class ReadWriteLock:
    """Many readers or one writer; a waiting writer holds new readers back.

    Re-entrant per thread: a reader may read again, and a writer may read or
    write again (a writing method that calls a reading one), without waiting for
    itself.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer: int | None = None  # ident of the thread that writes
        self._writer_depth = 0
        self._writers_waiting = 0
        self._local = threading.local()

    def _read_depth(self) -> int:
        return getattr(self._local, "depth", 0)

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """Hold the lock shared for the block."""
        me = threading.get_ident()
        if self._writer == me or self._read_depth():
            self._local.depth = self._read_depth() + 1
            try:
                yield
            finally:
                self._local.depth -= 1
            return
        with self._cond:
            while self._writer is not None or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        self._local.depth = 1
        try:
            yield
        finally:
            self._local.depth = 0
            with self._cond:
                self._readers -= 1
                if self._readers == 0:
                    self._cond.notify_all()

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the lock exclusively for the block."""
        me = threading.get_ident()
        if self._writer == me:
            self._writer_depth += 1
            try:
                yield
            finally:
                self._writer_depth -= 1
            return
        if self._read_depth():
            raise RuntimeError("a model method that reads cannot call one that writes")
        with self._cond:
            self._writers_waiting += 1
            try:
                while self._writer is not None or self._readers:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writer, self._writer_depth = me, 1
        try:
            yield
        finally:
            with self._cond:
                self._writer, self._writer_depth = None, 0
                self._cond.notify_all()


_lock_creation = threading.Lock()


def model_lock(model: Any) -> ReadWriteLock:
    """The model's lock, created on first use (also after unpickling or ``copy``)."""
    lock = model.__dict__.get("_rw_lock")
    if lock is None:
        with _lock_creation:
            lock = model.__dict__.get("_rw_lock")
            if lock is None:
                lock = model.__dict__["_rw_lock"] = ReadWriteLock()
    return lock


def reads(method: F) -> F:
    """Mark a method that only reads the fitted model: it runs beside other readers."""

    @functools.wraps(method)
    def wrapper(self, *args: Any, **kwargs: Any) -> Any:
        with model_lock(self).reading():
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def writes(method: F) -> F:
    """Mark a method that changes the fitted model: it runs alone."""

    @functools.wraps(method)
    def wrapper(self, *args: Any, **kwargs: Any) -> Any:
        with model_lock(self).writing():
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


class SharedModel:
    """Base of models shared between threads: pickles without its lock.

    Subclasses restore what pickling cannot carry (such as aligned buffers) in
    :meth:`_restore`.
    """

    def __getstate__(self) -> dict[str, Any]:
        with model_lock(self).reading():
            state = dict(self.__dict__)
        state.pop("_rw_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._restore()

    def _restore(self) -> None:
        """Rebuild what a pickle does not carry; nothing by default."""

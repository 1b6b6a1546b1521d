"""What a task runs with: the thread share of the worker it runs on, and the client it uses."""

from __future__ import annotations

from typing import Any

from fastrec import _runtime


def task_threads(n_threads: int | None) -> int:
    """Threads one task may use: ``n_threads`` when given, else its share of the worker's threads.

    On a distributed worker the share is the worker's ``nthreads`` divided by the
    tasks it is running now (this one included), at least 1: one thread per task
    when the worker runs as many tasks as it has threads.  Outside a worker
    (Dask's local schedulers) it is :func:`fastrec.get_num_threads`.
    """
    if n_threads is not None:
        return _runtime.check_threads(n_threads)
    try:
        from distributed import get_worker

        state = get_worker().state
    except (ImportError, ValueError):  # not inside a distributed worker
        return _runtime.resolve_threads(None)
    running = max(1, len(state.executing))
    return _runtime.check_threads(max(1, int(state.nthreads) // running))


def current_client(client: Any) -> Any:
    """``client`` when given, else the default distributed client, else None (local schedulers)."""
    if client is not None:
        return client
    try:
        from distributed import default_client

        return default_client()
    except (ImportError, ValueError):
        return None


def broadcast(obj: Any, client: Any) -> Any:
    """``obj`` once on every worker (a Future) with a client, else a Delayed holding it once."""
    import dask

    if client is not None:
        return client.scatter(obj, broadcast=True, hash=False)
    return dask.delayed(obj, pure=True)

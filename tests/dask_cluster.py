"""A real local Dask cluster for tests, and a check that it leaves no process behind."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from napari_nst.batch.cluster import LOOPBACK_HTTP


@contextlib.contextmanager
def local_client(**scheduler_kwargs: Any) -> Iterator[Any]:
    """Two single-threaded worker processes on 127.0.0.1, one task each at a time
    (saturation 1.0); closed at the end, and no child process may outlive them."""
    distributed = pytest.importorskip("distributed")
    import dask

    before = child_pids()
    with dask.config.set({"distributed.scheduler.worker-saturation": 1.0}):
        cluster = distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=logging.ERROR,
            scheduler_kwargs={**LOOPBACK_HTTP, **scheduler_kwargs},
        )
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()
    alive = new_children(before)
    assert not alive, f"cluster processes left behind: {[p.cmdline() for p in alive]}"


def child_pids() -> set[int]:
    import psutil

    return {p.pid for p in psutil.Process().children(recursive=True)}


def new_children(before: set[int]) -> list:
    """Processes started since ``before`` that are still alive after a grace period.

    multiprocessing's resource tracker is not one of them: it serves every child
    this process spawns and ends with it.
    """
    import psutil

    new = [
        p
        for p in psutil.Process().children(recursive=True)
        if p.pid not in before and "resource_tracker" not in " ".join(p.cmdline())
    ]
    return psutil.wait_procs(new, timeout=10)[1]

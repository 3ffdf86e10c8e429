"""Batch items on a ``dask.distributed`` cluster: an existing one, or a local one.

Each item is one task running :func:`napari_nst.batch.run_item` on a worker, which
reads its input and writes its output and sidecar itself (so workers must see the
same paths as this process: one machine, or a shared filesystem). Workers keep
what the engine caches per process (VGG19, fast models, style targets), so
a model is loaded once per worker, not once per item.

Failures: problems with an input fail its item at once (retrying cannot help);
other exceptions are retried up to :data:`RETRIES` times; a task whose workers
keep dying (killed, out of memory) is given up after the scheduler's
``allowed-failures``. Every failure is reported, and the other items go on.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from .item import BatchError, Item, Result, record_failure, run_item

RETRIES = 2
"""Extra attempts for an item that raised something other than a bad-input error."""
CONNECT_TIMEOUT = "10s"
LOOPBACK_HTTP = {"dashboard": False, "dashboard_address": "127.0.0.1:0"}
"""A local scheduler's HTTP endpoint (health checks; no dashboard): loopback, any free port."""


def distributed_module(wanted_by: str = "--workers and --scheduler need") -> Any:
    """``distributed``, or a :class:`BatchError` that says how to install it
    (``wanted_by`` names what needs it)."""
    try:
        import distributed
    except ImportError:
        raise BatchError(
            f"{wanted_by} dask.distributed, which is not installed: pip install 'napari-nst[dask]'"
        ) from None
    return distributed


@contextlib.contextmanager
def open_client(scheduler: str | None = None, workers: int | None = None) -> Iterator[Any]:
    """A client of the cluster at ``scheduler``, or of ``workers`` local processes.

    A local cluster listens on 127.0.0.1 only, without a dashboard, and is shut
    down (workers included) when the block ends, however it ends.
    """
    distributed = distributed_module()
    if scheduler:
        try:
            client = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError, ValueError) as exc:
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BatchError(f"cannot reach the Dask scheduler at {scheduler}: {detail}") from None
        with client:
            yield client
        return
    if not workers or workers < 1:
        raise BatchError(f"--workers must be at least 1; got {workers}")
    import dask

    # Dask's nanny sets MALLOC_TRIM_THRESHOLD_ in workers, which turns off glibc's
    # adaptive mmap threshold: every tensor over 128 kB is then mmapped, faulted in
    # and unmapped again. Measured here, fast 256 px items ran ~20 % slower so.
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        try:
            cluster = distributed.LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                silence_logs=logging.ERROR,
                scheduler_kwargs=LOOPBACK_HTTP,
            )
        except Exception as exc:  # most often: worker processes re-import an unguarded script
            raise BatchError(
                f"local Dask workers did not start ({describe_error(exc)}). Worker processes "
                "import the script that started Python: if that is your own script, put "
                "its code under `if __name__ == '__main__':`"
            ) from None
    try:
        with distributed.Client(cluster) as client:
            yield client
    finally:
        cluster.close()


def run_on_dask(client: Any, items: Sequence[Item], retries: int = RETRIES) -> Iterator[Result]:
    """Submit every item and yield results as they finish; unfinished ones are
    cancelled when the caller stops early (Ctrl-C)."""
    distributed = distributed_module()
    batch = f"napari-nst-item-{uuid.uuid4().hex}"  # one task group, so Dask queues them
    futures = {
        client.submit(run_item, item, True, key=(batch, number), pure=False, retries=retries): item
        for number, item in enumerate(items)
    }
    try:
        for future in distributed.as_completed(futures):
            item = futures[future]
            try:
                yield future.result()
            except Exception as exc:  # raised after its retries, or its workers died
                yield record_failure(item, describe_error(exc))
    finally:
        client.cancel(list(futures))


def describe_error(exc: BaseException) -> str:
    if type(exc).__name__ == "KilledWorker":
        tries = getattr(exc, "allowed_failures", None)
        times = f"{tries + 1} times" if isinstance(tries, int) else "repeatedly"
        return f"the worker running it died {times} (killed, or out of memory?)"
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__

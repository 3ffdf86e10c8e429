"""Jobs on a ``dask.distributed`` cluster (``napari-nst serve --scheduler ADDRESS``).

Each job is one task running :func:`napari_nst.batch.run_item` on a worker, which reads
the job's inputs and writes its result and sidecar record in the job's folder itself
(so the workers must see the data folder at the same path: one machine or a shared
filesystem). The server keeps its queue: at most as many jobs are on the cluster as
it has worker threads, the rest wait their turn here. A task reports only its end, so
there are no progress events, and a cancel stops a job that has not started (one a
worker runs goes on, unused). Options and the recipe's options apply; a recipe's
steering and thread count are not replayed there.
"""

from __future__ import annotations

import threading
from typing import Any

from ..batch.cluster import RETRIES, describe_error
from ..batch.item import Item, record_failure, run_item
from .events import Hub
from .jobs import Job, JobStore
from .security import Refused

DEVICE = "dask"
"""The queue name of every job when the server runs on a cluster."""


class DaskRunner:
    def __init__(self, store: JobStore, hub: Hub, client: Any, threads: int | None = None) -> None:
        self.store, self.hub, self.client, self.threads = store, hub, client, threads
        capacity = sum(client.nthreads().values()) or 1
        self._slots = threading.Semaphore(capacity)
        self._lock = threading.Lock()
        self._futures: dict[str, tuple[Job, Any]] = {}
        self._stopping = False
        self._thread = threading.Thread(target=self._feed, name="napari-nst-dask-feeder")

    def start(self) -> DaskRunner:
        self._thread.start()
        return self

    def hold(self, job: Job, paused: bool) -> bool:
        """A job on a Dask cluster runs as one task: it cannot be held."""
        raise Refused(409, f"job {job.id} runs on a Dask cluster: it cannot be paused")

    def cancel(self, job: Job) -> None:
        with self._lock:
            job.cancel_requested = True
            found = self._futures.get(job.id)
        if found is not None:
            found[1].cancel()

    def stop(self, timeout: float | None = None) -> None:
        """Stop feeding the cluster; jobs on it go back to the queue for the next start."""
        self.store.close()
        self._slots.release()  # wake the feeder if it waits for a slot
        with self._lock:
            self._stopping = True
            running = list(self._futures.values())
            self._futures.clear()
        for job, future in running:
            future.cancel()
            self.store.requeue(job)
        self._thread.join(timeout)

    def _feed(self) -> None:
        while True:
            self._slots.acquire()
            job = self.store.take(DEVICE)
            if job is None:
                return
            self._submit(job)

    def _submit(self, job: Job) -> None:
        folder = self.store.folder(job)
        task = Item(
            job.id,
            str(folder / job.content),
            str(self.store.result(job)),
            str(folder / job.styles[0]) if job.styles else None,
            job.options,
            {"id": job.id, "fingerprint": job.fingerprint, "attempt": job.attempts},
            self.threads,
        )
        self.hub.publish({"event": "started", "id": job.id, "attempt": job.attempts}, job.client)
        future = self.client.submit(
            run_item, task, True, key=f"napari-nst-job-{job.id}-{job.attempts}", pure=False,
            retries=RETRIES,
        )  # fmt: skip
        with self._lock:
            self._futures[job.id] = (job, future)
            if job.cancel_requested:
                future.cancel()
        future.add_done_callback(lambda done: self._finished(job, task, done))

    def _finished(self, job: Job, task: Item, future: Any) -> None:
        """In Dask's callback thread: record how the task ended and free its slot."""
        with self._lock:
            if self._stopping or self._futures.pop(job.id, None) is None:
                return
        try:
            if future.cancelled():
                status, message = "cancelled", "cancelled"
            else:
                try:
                    result = future.result()
                    status, message = result.status, result.message
                except Exception as exc:  # raised after its retries, or its workers died
                    message = describe_error(exc)
                    record_failure(task, message)
                    status = "failed"
            self.store.set_status(job, status, message)
            event = {"event": status, "id": job.id} | ({"message": message} if message else {})
            self.hub.publish(event, job.client)
        finally:
            self._slots.release()

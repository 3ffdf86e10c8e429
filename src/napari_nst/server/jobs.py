"""The job store: every job a folder in the data folder, so nothing is lost.

``DATA/jobs/<id>/`` holds the job's inputs (``content.<ext>``, ``style-0.<ext>``, …,
``labels.<ext>``), ``job.json`` (the submission: options, recipe, input names, the
digest of the submitter's key, its place in the queue) and, once it ran,
``state.json`` (status, message, attempts), ``result.<ext>`` and the batch-style
sidecar ``result.<ext>.json`` (the run record).

A submission is staged in ``DATA/incoming/`` and renamed into ``jobs/`` whole: a job
folder exists complete or not at all. Every file is written atomically, and the
result's sidecar is written after the image, so a server killed at any instant
restarts with each accepted job queued, finished, or (killed while running) queued
again; a job killed :data:`MAX_ATTEMPTS` times fails with that reason.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..core.files import write_json

STATUSES = ("queued", "running", "done", "failed", "cancelled")
FINISHED = ("done", "failed", "cancelled")
RETRIED = ("failed", "cancelled")
"""Jobs that the same options and inputs, submitted again (under another id), run again."""
MAX_ATTEMPTS = 2
"""Runs of one job that may be cut short by the server dying before it is failed."""


@dataclass
class Job:
    """One submission (``job.json``) and where it stands (``state.json`` + in memory)."""

    id: str
    fingerprint: str
    options: dict[str, Any]
    recipe: dict[str, Any] | None
    content: str
    styles: list[str]
    labels: str | None
    client: str
    device: str
    seq: int
    front: bool = False
    submitted: float = 0.0
    status: str = "queued"
    message: str = ""
    attempts: int = 0
    live: dict[str, Any] = field(default_factory=dict)
    """Progress of a running job (iteration, total, losses, …); not written to disk."""
    cancel_requested: bool = False
    """Its client cancelled it while it was being started (seen by the runner)."""
    paused: bool = False
    """Its client holds the running job between two iterations (not written to disk)."""

    SUBMISSION = (
        "id", "fingerprint", "options", "recipe", "content", "styles", "labels", "client",
        "device", "seq", "front", "submitted",
    )  # fmt: skip

    @property
    def result_name(self) -> str:
        return "result" + Path(self.content).suffix.lower()

    def submission(self) -> dict[str, Any]:
        data = asdict(self)
        return {key: data[key] for key in self.SUBMISSION}

    def state(self) -> dict[str, Any]:
        return {"status": self.status, "message": self.message, "attempts": self.attempts}


def fingerprint(options: dict[str, Any], recipe: Any, inputs: list[tuple[str, bytes]]) -> str:
    """The same recipe and the same input bytes (and formats) give the same fingerprint."""
    digest = hashlib.sha256()
    digest.update(json.dumps([options, recipe], sort_keys=True).encode())
    for role, data in inputs:
        digest.update(f"\0{role}\0{hashlib.sha256(data).hexdigest()}".encode())
    return digest.hexdigest()


class JobStore:
    """Jobs on disk and in memory, and the FIFO queue of each device.

    Thread-safe: the HTTP handlers, the runners and the event stream share it.
    """

    def __init__(self, data: str | Path) -> None:
        self.data = Path(data).resolve()
        self.jobs_dir = self.data / "jobs"
        self.incoming = self.data / "incoming"
        self.models = self.data / "models"
        for folder in (self.jobs_dir, self.incoming, self.models):
            folder.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.jobs: dict[str, Job] = {}
        self.by_fingerprint: dict[str, str] = {}
        self.queues: dict[str, deque[str]] = {}
        self.closed = False
        self._recover()

    # -- submission ---------------------------------------------------------------
    def stage(self) -> Path:
        """A fresh folder in ``incoming/`` for a submission's files."""
        folder = self.incoming / uuid.uuid4().hex
        folder.mkdir()
        return folder

    def find(self, job_id: str | None, print_: str) -> Job | None:
        """The job this submission repeats (same id, or same fingerprint unless that job
        failed or was cancelled: submitting it again runs it again), if any.

        Raises ``KeyError`` when ``job_id`` is taken by a different submission.
        """
        with self.lock:
            if job_id is not None and job_id in self.jobs:
                if self.jobs[job_id].fingerprint != print_:
                    raise KeyError(job_id)
                return self.jobs[job_id]
            known = self.jobs.get(self.by_fingerprint.get(print_, ""))
            return known if known is not None and known.status not in RETRIED else None

    def commit(
        self, staged: Path, job: Job, announce: Callable[[Job], None] = lambda job: None
    ) -> tuple[Job, bool]:
        """Make a staged submission a job (``job.json``, then one rename) and queue it;
        ``announce(job)`` is called before any runner can take it.

        Returns the job and whether it is new; a concurrent identical submission that
        got there first is returned instead (and ``staged`` removed).
        """
        with self.lock:
            try:
                existing = self.find(job.id, job.fingerprint)
            except KeyError:
                shutil.rmtree(staged, ignore_errors=True)
                raise
            if existing is not None:
                shutil.rmtree(staged, ignore_errors=True)
                return existing, False
            job.seq = self._next_seq()
            job.submitted = time.time()
            write_json(staged / "job.json", job.submission())
            staged.rename(self.jobs_dir / job.id)
            self._add(job)
            announce(job)
            return job, True

    def new_id(self, print_: str) -> str:
        with self.lock:
            job_id = print_[:20]
            return job_id if job_id not in self.jobs else uuid.uuid4().hex[:20]

    # -- reading ------------------------------------------------------------------
    def get(self, job_id: str) -> Job | None:
        with self.lock:
            return self.jobs.get(job_id)

    def folder(self, job: Job) -> Path:
        return self.jobs_dir / job.id

    def result(self, job: Job) -> Path:
        return self.folder(job) / job.result_name

    def record(self, job: Job) -> dict[str, Any] | None:
        """The job's run record (the result's sidecar), if written."""
        path = self.folder(job) / f"{job.result_name}.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def position(self, job: Job) -> int | None:
        """Jobs ahead of a queued one on its device (0: next), else None."""
        with self.lock:
            queue = self.queues.get(job.device, deque())
            return queue.index(job.id) if job.status == "queued" and job.id in queue else None

    def describe(self, job: Job) -> dict[str, Any]:
        with self.lock:
            return {
                "id": job.id,
                "status": job.status,
                "position": self.position(job),
                "message": job.message,
                "device": job.device,
                "submitted": job.submitted,
                **({"paused": True} if job.paused and job.status == "running" else {}),
                **job.live,
            }

    def all(self) -> list[Job]:
        with self.lock:
            return sorted(self.jobs.values(), key=lambda job: job.seq)

    # -- the queue ------------------------------------------------------------------
    def take(self, device: str, timeout: float | None = None) -> Job | None:
        """The next queued job of ``device``, now running; None once closed (or timed out)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.changed:
            while not self.closed:
                queue = self.queues.get(device)
                if queue:
                    job = self.jobs[queue.popleft()]
                    job.attempts += 1
                    self.set_status(job, "running")
                    return job
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self.changed.wait(left)
            return None

    def requeue(self, job: Job) -> None:
        """A running job the server stops for (shutdown) goes back to the queue's front."""
        with self.changed:
            job.attempts -= 1
            job.live = {}
            self.set_status(job, "queued")
            self.queues.setdefault(job.device, deque()).appendleft(job.id)
            self.changed.notify_all()

    def cancel_queued(self, job: Job) -> bool:
        with self.changed:
            queue = self.queues.get(job.device, deque())
            if job.status != "queued" or job.id not in queue:
                return False
            queue.remove(job.id)
            self.set_status(job, "cancelled", "cancelled before it started")
            return True

    def remove(self, job: Job) -> None:
        """Forget a finished job and delete its folder (moved out of ``jobs/`` in one
        rename first, so a crash never leaves half a job there)."""
        with self.changed:
            if job.status not in FINISHED or self.jobs.get(job.id) is not job:
                raise ValueError(f"job {job.id} is {job.status}")
            del self.jobs[job.id]
            if self.by_fingerprint.get(job.fingerprint) == job.id:
                del self.by_fingerprint[job.fingerprint]
            trash = self.incoming / f"deleted-{uuid.uuid4().hex}"
            self.folder(job).rename(trash)
        shutil.rmtree(trash, ignore_errors=True)

    def set_status(self, job: Job, status: str, message: str = "") -> None:
        with self.changed:
            job.status, job.message = status, message
            write_json(self.folder(job) / "state.json", job.state())
            self.changed.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Whether every job finished within ``timeout`` seconds (tests, benchmarks)."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while any(job.status not in FINISHED for job in self.jobs.values()):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(left)
            return True

    def close(self) -> None:
        with self.changed:
            self.closed = True
            self.changed.notify_all()

    # -- inside -------------------------------------------------------------------
    def _add(self, job: Job) -> None:
        self.jobs[job.id] = job
        self._index(job)
        if job.status == "queued":
            queue = self.queues.setdefault(job.device, deque())
            (queue.appendleft if job.front else queue.append)(job.id)
        self.changed.notify_all()

    def _index(self, job: Job) -> None:
        """The fingerprint names the job a repeated submission gets back."""
        known = self.jobs.get(self.by_fingerprint.get(job.fingerprint, ""))
        if known is None or known is job or known.status in RETRIED:
            self.by_fingerprint[job.fingerprint] = job.id

    def _next_seq(self) -> int:
        return max((job.seq for job in self.jobs.values()), default=0) + 1

    def _recover(self) -> None:
        """Load every job; what was running when the server died runs again (or fails)."""
        for leftover in self.incoming.iterdir():  # submissions never answered
            shutil.rmtree(leftover, ignore_errors=True)
        loaded = []
        for folder in sorted(self.jobs_dir.iterdir()):
            with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
                loaded.append(self._load(folder))
        # Front-of-queue jobs first (the latest in front, as when they came), then FIFO.
        loaded.sort(key=lambda job: (not job.front, -job.seq if job.front else job.seq))
        with self.lock:
            for job in loaded:
                self._add_recovered(job)

    def _load(self, folder: Path) -> Job:
        submission = json.loads((folder / "job.json").read_text(encoding="utf-8"))
        job = Job(**{key: submission[key] for key in Job.SUBMISSION})
        state_path = folder / "state.json"
        if state_path.is_file():
            state = json.loads(state_path.read_text(encoding="utf-8"))
            job.status, job.message = state["status"], state.get("message", "")
            job.attempts = int(state.get("attempts", 0))
        return job

    def _add_recovered(self, job: Job) -> None:
        self.jobs[job.id] = job
        self._index(job)
        if job.status in FINISHED:  # where it ended, as GET /jobs/ID said before
            record = self.record(job) or {}
            job.live = {key: record[key] for key in ("iteration", "losses") if key in record}
            return
        if job.status != "running":
            if job.status == "queued":
                self.queues.setdefault(job.device, deque()).append(job.id)
            return
        record = self.record(job)
        if record is not None and record.get("status") == "done" and self.result(job).is_file():
            self.set_status(job, "done")  # killed after the record, before the state
        elif job.attempts >= MAX_ATTEMPTS:
            self.set_status(
                job, "failed", f"the server stopped while running it ({job.attempts} times)"
            )
        else:
            self.set_status(job, "queued", "the server stopped while running it; queued again")
            self.queues.setdefault(job.device, deque()).append(job.id)

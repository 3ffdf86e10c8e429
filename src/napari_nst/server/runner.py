"""Running jobs: one thread per device takes the next job of its queue (FIFO) and
drives it through the engine (``core.prepare(...)`` and its stream of steps), as the
CLI and batch items do; the image and its batch-style record are written as a batch
item writes them (``batch.item.write_result``, sidecar last).
"""

from __future__ import annotations

import base64
import io
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..batch.item import Item, record_failure, sidecar, stylize_file
from ..core.files import write_json
from .events import Hub
from .jobs import Job, JobStore

if TYPE_CHECKING:
    from ..core.step import Run, Step

PREVIEW_INTERVAL = 1.0
"""Seconds between two previews of one job sent to clients (at most)."""


@dataclass
class Control:
    """How a job's driver is told to stop, from any thread: by its client (cancel)
    or by the server (shutdown: the job goes back to the queue)."""

    cancelled: bool = False
    stopping: bool = False
    run: Run | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    going: threading.Event = field(default_factory=threading.Event)
    """Clear while the job is paused: the engine waits between two steps."""

    def __post_init__(self) -> None:
        self.going.set()

    def stop(self, shutdown: bool = False) -> None:
        with self.lock:
            self.stopping = self.stopping or shutdown
            self.cancelled = self.cancelled or not shutdown
            if self.run is not None:
                self.run.cancel()
        self.going.set()  # a paused job goes on to see the stop

    def hold(self, paused: bool) -> None:
        """Pause (or resume) the job after the step in progress, as the dock's Pause."""
        if paused and not (self.cancelled or self.stopping):
            self.going.clear()
        else:
            self.going.set()

    def attach(self, run: Run) -> bool:
        """Remember the run to cancel; False when the job was stopped already."""
        with self.lock:
            self.run = run
            return not (self.cancelled or self.stopping)


@dataclass(frozen=True)
class Inputs:
    """A job's files and options, wherever it comes from (HTTP upload or stdio paths)."""

    content: Path
    styles: list[Path]
    labels: Path | None
    options: dict[str, Any]
    recipe: dict[str, Any] | None
    output: Path


@dataclass(frozen=True)
class Outcome:
    status: str  # done, failed, cancelled or interrupted (the server stopped)
    message: str = ""
    seconds: float = 0.0


def execute(
    inputs: Inputs,
    control: Control,
    on_step: Callable[[Step], None] = lambda step: None,
    threads: int | None = None,
    extra: dict[str, Any] | None = None,
) -> Outcome:
    """Run one job to its end and write its image, then its record; never raises."""
    from ..core.devices import torch_threads
    from ..core.provenance import parse_recipe

    start = time.perf_counter()
    style_names = [str(path) for path in inputs.styles]
    failure_item = Item(
        inputs.output.name, str(inputs.content), str(inputs.output),
        style_names[0] if len(style_names) == 1 else ",".join(style_names) or None,
        inputs.options, extra or {},
    )  # fmt: skip
    try:
        recipe = parse_recipe(inputs.recipe) if inputs.recipe is not None else None
        if threads is None and recipe is not None:
            threads = recipe.threads
        sources = {"content": inputs.content.name, "style": [p.name for p in inputs.styles]}
        with torch_threads(threads):
            done = stylize_file(
                inputs.content, inputs.styles, inputs.output, inputs.options, sources=sources,
                labels=inputs.labels, recipe=recipe, on_step=on_step, begin=control.attach,
            )  # fmt: skip
        if done is None:
            return _stopped(control, failure_item, start)
    except ValueError as exc:
        record_failure(failure_item, str(exc))
        return Outcome("failed", str(exc), time.perf_counter() - start)
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}"
        record_failure(failure_item, message)
        return Outcome("failed", message, time.perf_counter() - start)
    if control.stopping:
        return Outcome("interrupted", "", time.perf_counter() - start)
    last = done.collected.last
    cancelled = last is not None and last.cancelled
    if cancelled and not done.collected.written:
        return _stopped(control, failure_item, start)
    seconds = time.perf_counter() - start
    log = done.write(inputs.output)
    log["server"] = (extra or {}) | {"seconds": seconds}
    write_json(sidecar(inputs.output), log)
    if cancelled:
        return Outcome("cancelled", "cancelled; the newest preview is the result", seconds)
    return Outcome("done", "", seconds)


def _stopped(control: Control, job: Item, start: float) -> Outcome:
    if control.stopping:
        return Outcome("interrupted", "", time.perf_counter() - start)
    record_failure(job, "cancelled before any preview")
    return Outcome("cancelled", "cancelled before any preview", time.perf_counter() - start)


def preview_png(image: np.ndarray) -> str:
    """A preview as base64 PNG (8-bit; gray scaled to its own range)."""
    import imageio.v3 as iio

    array = np.asarray(image)
    if array.dtype != np.uint8:
        array = array.astype(np.float32)
        if array.ndim == 2 or (array.dtype.kind == "f" and array.max(initial=0) > 1.0):
            low, high = float(np.nanmin(array)), float(np.nanmax(array))
            array = (array - low) / (high - low or 1.0)
        array = np.rint(np.clip(np.nan_to_num(array), 0, 1) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    iio.imwrite(buffer, array, extension=".png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


class Runner:
    """The thread that runs one device's jobs, one at a time, in queue order."""

    def __init__(
        self,
        store: JobStore,
        hub: Hub,
        device: str,
        threads: int | None = None,
        preview_interval: float = PREVIEW_INTERVAL,
    ) -> None:
        self.store, self.hub, self.device = store, hub, device
        self.threads, self.preview_interval = threads, preview_interval
        self.current: tuple[Job, Control] | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name=f"napari-nst-runner-{device}")

    def start(self) -> Runner:
        self._thread.start()
        return self

    def cancel(self, job: Job) -> None:
        """Stop ``job`` if it is this runner's (now, or as soon as it starts)."""
        with self._lock:
            job.cancel_requested = True
            if self.current is not None and self.current[0] is job:
                self.current[1].stop()

    def hold(self, job: Job, paused: bool) -> bool:
        """Pause or resume ``job`` if it is the one running here; False if it is not."""
        with self._lock:
            if self.current is None or self.current[0] is not job:
                return False
            job.paused = paused
            self.current[1].hold(paused)
        self.hub.publish({"event": "paused" if paused else "resumed", "id": job.id}, job.client)
        return True

    def stop(self, timeout: float | None = None) -> None:
        """Stop taking jobs; the running one goes back to the queue for the next start."""
        self.store.close()
        with self._lock:
            if self.current is not None:
                self.current[1].stop(shutdown=True)
        self._thread.join(timeout)

    def _loop(self) -> None:
        while (job := self.store.take(self.device)) is not None:
            control = Control()
            with self._lock:
                self.current = (job, control)
                if job.cancel_requested:  # cancelled between the queue and here
                    control.stop()
            try:
                self._run(job, control)
            finally:
                with self._lock:
                    self.current = None

    def _run(self, job: Job, control: Control) -> None:
        store = self.store
        self.hub.publish({"event": "started", "id": job.id, "attempt": job.attempts}, job.client)
        folder = store.folder(job)
        inputs = Inputs(
            folder / job.content,
            [folder / name for name in job.styles],
            folder / job.labels if job.labels else None,
            job.options,
            job.recipe,
            store.result(job),
        )
        last_preview = 0.0

        def on_step(step: Step) -> None:
            nonlocal last_preview
            progress = {
                "iteration": step.iteration,
                "total": step.total,
                "losses": dict(step.losses),
                "elapsed": step.elapsed,
                "remaining": step.remaining,
                "plane": step.plane,
                "planes": step.planes,
            }
            job.live = progress
            self.hub.publish({"event": "progress", "id": job.id, **progress}, job.client)
            now = time.monotonic()
            if (
                step.image is not None
                and now - last_preview >= self.preview_interval
                and self.hub.wants_previews(job.id)
            ):
                last_preview = now
                preview = {"iteration": step.iteration, "index": list(step.index)}
                preview["png"] = preview_png(step.image)
                self.hub.publish({"event": "preview", "id": job.id, **preview}, job.client)
            control.going.wait()  # paused: hold the engine here, between two steps

        extra = {"id": job.id, "fingerprint": job.fingerprint, "attempt": job.attempts}
        outcome = execute(inputs, control, on_step, self.threads, extra)
        job.paused = False
        if outcome.status == "interrupted":
            store.requeue(job)
            return
        store.set_status(job, outcome.status, outcome.message)
        event = {"event": outcome.status, "id": job.id, "seconds": outcome.seconds}
        self.hub.publish(
            event | ({"message": outcome.message} if outcome.message else {}), job.client
        )

"""Whole-stack runs on a Dask cluster: one task per plane, streamed back as they finish.

:class:`StackOnDask` is driven like a local run (``rendering``, ``planes``,
``options``, ``layout``, ``cancel()``, ``info()``, ``steps()``), so the widget
needs no second code path. Everything is validated up front by preparing the
same run locally (same errors, same output layout); connecting to the cluster,
or starting a local one (seconds), happens in ``steps()``, in the worker thread.

Each plane is stylised on its own, on a worker, with the whole stack's intensity
window, by the same engine (:func:`stylize_plane`); a worker keeps what the
engine caches per process (VGG19, fast models, style targets). Gatys
planes are therefore independent: there is no chaining from one slice's result
to the next and no slice term (that is sequential by nature), and a
luminance-only style is matched to each plane's brightness, not the stack's.

Planes finish in any order: a step's ``index`` says where its plane belongs and
``plane`` counts the planes finished so far, so progress and the run record's
``planes`` stay right. Cancel cancels every task not finished yet; tasks a
worker has already started run to their end, but their results are dropped.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..core import prepare
from ..core.devices import cpu_threads, torch_threads
from ..core.step import STOP, Run, Step
from .cluster import describe_error, distributed_module, open_client

LOCAL = "local"
"""The scheduler field's word for "start a local cluster for this run" (``local:N``: N workers)."""
LOCAL_WORKERS = 4
"""Workers of a ``local`` cluster (fewer on smaller machines): processes share the cores."""
POLL_SECONDS = 0.2
"""How often a wait for results looks at the cancel flag."""
INDEPENDENT = "planes run independently: no slice term, luminance matched per plane"


class ClusterRunError(Exception):
    """A plane that failed on the cluster (the other planes were cancelled)."""


def prepare_run(content: object, style: object, scheduler: str = "", **options: Any) -> Run:
    """The engine's run, or with a ``scheduler`` (address or ``local[:N]``) a Dask one."""
    if not scheduler.strip():
        return prepare(content, style, **options)
    return StackOnDask(content, style, scheduler, **options)


class StackOnDask:
    """A whole-stack run whose planes are tasks on a Dask cluster."""

    # The planes run on the cluster: no holding, steering or going on (core.step.Run).
    pausable = False
    steerable = False
    continuable = False
    redecodable = False

    def __init__(self, content: object, style: object, scheduler: str, **options: Any) -> None:
        self._distributed = distributed_module("a Dask scheduler needs")
        self._address, self._workers = parse_scheduler(scheduler)
        local = prepare(content, style, **options)
        if local.options.stack != "all":
            raise ValueError("a Dask scheduler runs whole stacks: choose stack 'all'")
        self._local = local
        self.options, self.layout, self.rendering = local.options, local.layout, local.rendering
        self.device, self.shape, self.full_size = local.device, local.shape, local.full_size
        self.last_iteration = 0
        self._content, self._style = content, style
        self._unit = self.options.iterations if self.options.method == "gatys" else 1
        self._threads = cpu_threads(share=self._workers) if self._address is None else None
        self._plane_options = _plane_options(self.options, self.layout, self.rendering)
        self._stop = threading.Event()
        self._cluster: dict[str, Any] = {"scheduler": self._address or LOCAL}
        self._worker_info: dict[str, Any] = {}
        self._non_finite = 0

    @property
    def planes(self) -> int:
        return self._local.planes

    def continued(self, iterations: int, size: int | None = None) -> StackOnDask:
        raise ValueError("a stack run on a cluster cannot be continued: run it again")

    def redecoded(self, alpha: float) -> np.ndarray:
        raise ValueError("only wct and adain runs can be redecoded with another alpha")

    def hold(self, paused: bool) -> None:
        """Never called: the planes run on the cluster, so the run is not pausable."""

    def cancel(self) -> None:
        """Stop from any thread: the unfinished tasks are cancelled within a poll."""
        self._stop.set()

    def info(self) -> dict[str, Any]:
        """The local run's description, as the workers ran it, plus the cluster."""
        local = self._local.info()
        info = {**local, **self._worker_info, "result": local["result"]}
        info["non_finite_pixels"] = self._non_finite
        info["threads"] = self._threads  # per worker; None: what the cluster's workers have
        dask = dict(self._cluster)
        if self.options.method == "gatys":
            dask["planes"] = INDEPENDENT
        return info | {"dask": dask}

    def steps(self) -> Iterator[Step]:
        """Submit every plane, yield each as it finishes; on cancel, one last step.

        The cluster is closed (and a local one shut down) before that last step,
        so a run stopped by Cancel, or by napari quitting its worker, leaves
        nothing running.
        """
        start = time.perf_counter()
        if self._stop.is_set():
            yield self._stopped(0, start)
            return
        with open_client(self._address, self._workers) as client:
            self._cluster["workers"] = len(client.nthreads())
            tail = yield from self._stream(client, start)
        for step in tail:  # noqa: UP028 (``yield from`` a list fails on the widget's send)
            yield step

    def _stream(self, client: Any, start: float) -> Generator[Step, object, list[Step]]:
        """Yield finished planes; returns what to yield once the cluster is closed."""
        group = f"napari-nst-plane-{uuid.uuid4().hex}"  # task keys: (group, plane number)
        style = client.scatter(self._style, hash=False) if self._style is not None else None
        where: dict[Any, tuple[int, tuple[int, ...]]] = {}
        pending: set[Any] = set()
        finished = 0
        try:
            for number, index in enumerate(self.layout.indices):
                if self._stop.is_set():
                    break
                plane = client.scatter(_materialise(self._content[index]), hash=False)
                future = client.submit(
                    stylize_plane, plane, style, self._plane_options, self._threads,
                    key=(group, number), pure=False,
                )  # fmt: skip
                where[future] = (number, index)
                pending.add(future)
            while pending and not self._stop.is_set():
                try:
                    done, pending = self._distributed.wait(
                        pending, timeout=POLL_SECONDS, return_when="FIRST_COMPLETED"
                    )
                except TimeoutError:
                    continue
                for future in sorted(done, key=lambda f: where[f][0]):
                    step = self._plane_step(future, where[future], finished, start)
                    finished += 1
                    if (yield step) == STOP and not step.done:
                        self._stop.set()
            if not self._stop.is_set():
                return []
            ready = [future for future in pending if future.status == "finished"]
            client.cancel([future for future in pending if future not in ready])
            pending.clear()
            tail = []
            for future in sorted(ready, key=lambda f: where[f][0]):
                tail.append(self._plane_step(future, where[future], finished, start, last=False))
                finished += 1
            return [*tail, self._stopped(finished, start)]
        finally:
            if pending:  # an error, or the consumer closed us: nothing more runs
                client.cancel(list(pending))

    def _plane_step(
        self,
        future: Any,
        where: tuple[int, tuple[int, ...]],
        finished: int,
        start: float,
        last: bool = True,
    ) -> Step:
        number, index = where
        try:
            image, losses, info = future.result()
        except Exception as exc:
            raise ClusterRunError(
                f"slice {number + 1} of {self.planes} failed on the cluster: {describe_error(exc)}"
            ) from None
        self._non_finite += int(info.pop("non_finite_pixels", 0))
        self._worker_info = info
        return Step(
            iteration=(finished + 1) * self._unit,
            total=self.planes * self._unit,
            losses=losses,
            elapsed=time.perf_counter() - start,
            image=image,
            done=last and finished + 1 == self.planes,
            index=index,
            plane=finished,
            planes=self.planes,
            plane_done=True,
        )

    def _stopped(self, finished: int, start: float) -> Step:
        return Step(
            iteration=finished * self._unit,
            total=self.planes * self._unit,
            losses={},
            elapsed=time.perf_counter() - start,
            done=True,
            cancelled=True,
            plane=finished,
            planes=self.planes,
        )


def parse_scheduler(text: str) -> tuple[str | None, int | None]:
    """``(address, None)`` for a cluster, ``(None, workers)`` for ``local`` / ``local:N``."""
    text = text.strip()
    name, _, count = text.partition(":")
    if name.lower() != LOCAL:
        return text, None
    if not count:
        return None, max(1, min(LOCAL_WORKERS, os.cpu_count() or 1))
    if not count.isdigit() or int(count) < 1:
        raise ValueError(f"'{text}': write local, or local:N with N ≥ 1 worker processes")
    return None, int(count)


def stylize_plane(
    plane: np.ndarray, style: np.ndarray | None, options: dict[str, Any], threads: int | None
) -> tuple[np.ndarray, dict[str, float], dict[str, Any]]:
    """On a worker: one 2-D plane through the engine; (result, final losses, run info)."""
    from ..core.api import run_to_end

    with torch_threads(threads):
        run = prepare(plane, style, **options)
        collected = run_to_end(run)
    if not collected.written or collected.last is None:
        raise RuntimeError("the engine ended without a result")
    return collected.image, collected.last.losses, run.info()


def _plane_options(options: Any, layout: Any, rendering: Any) -> dict[str, Any]:
    """One plane's options: the stack's window and colour decision, result only."""
    plane = dataclasses.replace(
        options,
        stack="slice",
        contrast_limits=layout.window,
        luminance_only=rendering.luminance_only,
        preview_every=options.iterations,  # only the final image comes back
        checkpoint=_absolute(options.checkpoint),
        vgg=_absolute(options.vgg),
        decoders=_absolute(options.decoders),
    )
    return plane.to_dict()


def _absolute(spec: str | None) -> str | None:
    """A file (or decoder folder) the workers must open as an absolute path (``random``,
    ``shipped``, ``caffe:`` kept)."""
    if spec is None:
        return None
    prefix = "caffe:" if spec.startswith("caffe:") else ""
    path = Path(spec.removeprefix(prefix)).expanduser()
    return f"{prefix}{path.resolve()}" if path.exists() else spec  # a file or a folder


def _materialise(plane: Any) -> np.ndarray:
    """A plane of a numpy, zarr or dask array as numpy (dask computed in this thread)."""
    compute = getattr(plane, "compute", None)
    if callable(compute):
        plane = compute(scheduler="synchronous")
    return np.ascontiguousarray(plane)

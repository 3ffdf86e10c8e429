"""One batch item, as a worker runs it: read, stylise, write the image, then the record.

Plain data in (:class:`Job`), plain data out (:class:`Result`), so the same
function runs in this process or on a Dask worker. Writes are atomic (temporary
file, then rename) and the sidecar comes last: an image without a ``done``
sidecar is unfinished, whatever happened to the process writing it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.files import check_writable, file_ready, read_image, write_json
from ..core.files import write_image as _write_image


class BatchError(ValueError):
    """A batch that cannot start: bad inputs, names or options (nothing was run)."""


@dataclass(frozen=True)
class Job:
    """One item, with everything a worker needs (plain data, so it pickles)."""

    name: str
    source: str
    output: str
    style: str | None
    options: dict[str, Any]
    recipe: dict[str, Any]
    threads: int | None = None


@dataclass(frozen=True)
class Result:
    """How an item ended; ``worker`` is ``host:pid`` of the process that ran it."""

    name: str
    status: str  # "done" or "failed"
    message: str = ""
    seconds: float = 0.0
    worker: str = ""


def sidecar(output: str | os.PathLike) -> Path:
    """The JSON record beside an output image: ``out.png`` → ``out.png.json``."""
    return Path(f"{output}.json")


def run_item(job: Job, raise_unexpected: bool = False) -> Result:
    """Stylise one item and write its image, then its sidecar.

    Problems with the input or options (``ValueError``) fail the item at once and
    its sidecar says why; other exceptions do the same, unless ``raise_unexpected``
    (Dask retries them, and the caller records the last failure).
    """
    from ..core.devices import torch_threads  # torch on first use: the CLI starts fast

    start, worker = time.perf_counter(), f"{socket.gethostname()}:{os.getpid()}"
    try:
        with torch_threads(job.threads) as threads:
            record = _stylize(job)
    except ValueError as exc:
        return record_failure(job, str(exc), worker)
    except Exception as exc:
        if raise_unexpected:
            raise
        return record_failure(job, f"{type(exc).__name__}: {exc}", worker)
    seconds = time.perf_counter() - start
    record["batch"] = {
        "recipe": job.recipe,
        "output_bytes": Path(job.output).stat().st_size,
        "threads": threads,
        "worker": worker,
        "seconds": seconds,
    }
    write_json(sidecar(job.output), record)
    return Result(job.name, "done", seconds=seconds, worker=worker)


def record_failure(job: Job, message: str, worker: str = "") -> Result:
    """Report a failed item and say so in its sidecar (an older image is left as it was)."""
    record = {
        "params": job.options,
        "status": "failed",
        "message": message,
        "sources": {"content": job.source, "style": job.style},
        "output": None,
        "batch": {"recipe": job.recipe, "worker": worker},
    }
    with contextlib.suppress(OSError):
        write_json(sidecar(job.output), record)
    return Result(job.name, "failed", message, worker=worker)


def _stylize(job: Job) -> dict[str, Any]:
    from ..core import prepare
    from ..core.api import run_to_end
    from ..core.provenance import RunRecord

    content = read_image(job.source, "content image")
    options = dict(job.options)
    options.setdefault("stack", "all" if is_stack(content) else "slice")
    style = read_image(job.style, "style image") if job.style else None
    run = prepare(content, style, **options)
    rendering = run.rendering
    check_writable(job.output, len(rendering.shape), rgb=rendering.kind != "gray")
    record = RunRecord(run.options.to_dict(), {"content": job.source, "style": job.style})
    result = run_to_end(run, on_step=record.update).image
    log = record.to_dict() | run.info()
    log["steps"] = log.pop("history")  # the CLI's spelling, as in --log-json
    log["output"] = str(write_result(result, job.output, rendering))
    return log


def is_stack(array: np.ndarray) -> bool:
    """More than one plane: leading axes beyond (H, W) or (H, W, colour)."""
    colour = array.ndim >= 3 and array.shape[-1] in (3, 4)
    return array.ndim - int(colour) > 2


def write_result(image: np.ndarray, output: str | os.PathLike, rendering: Any) -> Path:
    """Write a result as ``stylize`` does: gray in the content's dtype where the format can."""
    if rendering.kind == "gray" and rendering.output_range == "original":
        layout = rendering.layout
        image = file_ready(image, Path(output).suffix, layout.dtype, layout.window)
    return _write_image(output, image, rgb=rendering.kind != "gray")

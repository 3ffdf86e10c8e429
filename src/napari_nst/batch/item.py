"""One batch item, as a worker runs it: read, stylise, write the image, then the record.

Plain data in (:class:`Item`), plain data out (:class:`Result`), so the same
function runs in this process or on a Dask worker. Writes are atomic (temporary
file, then rename) and the sidecar comes last: an image without a ``done``
sidecar is unfinished, whatever happened to the process writing it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.files import check_writable, file_ready, read_image, write_json
from ..core.files import write_image as _write_image

if TYPE_CHECKING:
    from ..core.api import Collected
    from ..core.images import Rendering
    from ..core.provenance import Recipe
    from ..core.step import Run, Step


class BatchError(ValueError):
    """A batch that cannot start: bad inputs, names or options (nothing was run)."""


@dataclass(frozen=True)
class Item:
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


def run_item(item: Item, raise_unexpected: bool = False) -> Result:
    """Stylise one item and write its image, then its sidecar.

    Problems with the input or options (``ValueError``) fail the item at once and
    its sidecar says why; other exceptions do the same, unless ``raise_unexpected``
    (Dask retries them, and the caller records the last failure).
    """
    from ..core.devices import torch_threads  # torch on first use: the CLI starts fast

    start, worker = time.perf_counter(), f"{socket.gethostname()}:{os.getpid()}"
    try:
        with torch_threads(item.threads) as threads:
            record = _stylize(item)
    except ValueError as exc:
        return record_failure(item, str(exc), worker)
    except Exception as exc:
        if raise_unexpected:
            raise
        return record_failure(item, f"{type(exc).__name__}: {exc}", worker)
    seconds = time.perf_counter() - start
    record["batch"] = {
        "recipe": item.recipe,
        "output_bytes": Path(item.output).stat().st_size,
        "threads": threads,
        "worker": worker,
        "seconds": seconds,
    }
    write_json(sidecar(item.output), record)
    return Result(item.name, "done", seconds=seconds, worker=worker)


def record_failure(item: Item, message: str, worker: str = "") -> Result:
    """Report a failed item and say so in its sidecar (an older image is left as it was)."""
    record = {
        "params": item.options,
        "status": "failed",
        "message": message,
        "sources": {"content": item.source, "style": item.style},
        "output": None,
        "batch": {"recipe": item.recipe, "worker": worker},
    }
    with contextlib.suppress(OSError):
        write_json(sidecar(item.output), record)
    return Result(item.name, "failed", message, worker=worker)


def _stylize(item: Item) -> dict[str, Any]:
    styles = [item.style] if item.style else []
    sources = {"content": item.source, "style": item.style}
    done = stylize_file(item.source, styles, item.output, item.options, sources=sources)
    assert done is not None  # nothing stops a batch item before it starts
    return done.write(item.output)


@dataclass
class Stylized:
    """A file's run, ended: its record (without ``output``), the result and its layout."""

    record: dict[str, Any]
    collected: Collected
    rendering: Rendering

    def write(self, output: str | os.PathLike) -> dict[str, Any]:
        """Write the result as ``stylize`` does; the record, now naming ``output``."""
        image = self.collected.image
        self.record["output"] = str(write_result(image, output, self.rendering))
        return self.record


def stylize_file(
    source: str | os.PathLike,
    styles: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    options: dict[str, Any],
    *,
    sources: dict[str, Any],
    labels: str | os.PathLike | None = None,
    recipe: Recipe | None = None,
    on_step: Callable[[Step], None] | None = None,
    begin: Callable[[Run], bool] | None = None,
) -> Stylized | None:
    """A content file through the engine, the work of a batch item and of a server job:
    read the inputs, check ``output`` can take the result, run (steered as ``recipe``'s
    run was) and record. ``begin(run)`` is told the run before it computes; when it
    answers False nothing runs and the answer is None. Raises ``ValueError`` for bad
    inputs or options."""
    from ..core import prepare
    from ..core.api import replayed_steps, run_to_end
    from ..core.provenance import RunRecord

    content = read_image(source, "content image")
    options = dict(options)
    options.setdefault("stack", "all" if is_stack(content) else "slice")
    if labels is not None:
        options["labels"] = read_image(labels, "labels image")
    images = [read_image(style, "style image") for style in styles]
    run = prepare(content, images[0] if len(images) == 1 else images or None,
                  recipe=recipe, **options)  # fmt: skip
    rendering = run.rendering
    check_writable(output, len(rendering.shape), rgb=rendering.kind != "gray")
    if begin is not None and not begin(run):
        return None
    record = RunRecord(run.options.to_dict(), sources)

    def seen(step: Step) -> None:
        record.update(step)
        if on_step is not None:
            on_step(step)

    collected = run_to_end(run, replayed_steps(run, recipe), on_step=seen)
    log = record.to_dict() | run.info()
    log["steps"] = log.pop("history")  # the CLI's spelling, as in --log-json
    return Stylized(log, collected, rendering)


def is_stack(array: np.ndarray) -> bool:
    """More than one plane: leading axes beyond (H, W) or (H, W, colour)."""
    colour = array.ndim >= 3 and array.shape[-1] in (3, 4)
    return array.ndim - int(colour) > 2


def write_result(image: np.ndarray, output: str | os.PathLike, rendering: Rendering) -> Path:
    """Write a result as ``stylize`` does: gray in the content's dtype where the format can."""
    if rendering.kind == "gray" and rendering.output_range == "original":
        layout = rendering.layout
        image = file_ready(image, Path(output).suffix, layout.dtype, layout.window)
    return _write_image(output, image, rgb=rendering.kind != "gray")

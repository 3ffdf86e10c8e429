"""Starting the engine in a napari generator worker, so that quitting really stops it.

napari asks every registered worker to ``quit()`` when its window closes (and waits
for them when the application quits), but a generator worker only sees that flag
between two yields, which for a large optimisation step can be many seconds.
Quitting here also cancels the engine, which checks before every loss evaluation,
every tile and every setup stage.

superqt takes a ``RuntimeError`` escaping a worker for the sign of a deleted Qt
object and drops it: no ``errored``, no ``finished``, a widget stuck "running".
Such errors from the engine (torch raises many) are passed on as :class:`RunError`.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterator
from typing import Any

from napari.qt.threading import GeneratorWorker, create_worker


class RunError(Exception):
    """A ``RuntimeError`` from the engine, re-raised so that napari reports it."""


def start_worker(
    steps: Callable[[], Iterator[Any]],
    *,
    yielded: Callable[[Any], None],
    errored: Callable[[Exception], None],
    finished: Callable[[], None],
    cancel: Callable[[], None] | None = None,
) -> GeneratorWorker:
    """Run ``steps`` (a generator function) in napari's thread pool, wired and started."""
    # napari's task-status list keeps every worker it has seen, and a worker keeps its
    # function and ``quit``: the run (and with it the loss network and the user's
    # data) is reachable only through ``calls`` here, emptied as soon as the run ends.
    calls: dict[str, Callable[..., Any]] = {"steps": steps}
    if cancel is not None:
        calls["cancel"] = cancel

    def run() -> Any:
        try:
            return (yield from calls.pop("steps")())
        except RuntimeError as exc:
            traceback.clear_frames(exc.__traceback__)  # keep the trace, not the tensors
            raise RunError(str(exc) or type(exc).__name__) from exc
        finally:
            calls.clear()

    worker = create_worker(run, _ignore_errors=True)
    if not isinstance(worker, GeneratorWorker):  # napari decides from the function's kind
        raise TypeError("steps must be a generator function")
    quit_between_yields = worker.quit

    def quit_now() -> None:
        if "cancel" in calls:
            calls["cancel"]()
        quit_between_yields()

    worker.quit = quit_now  # type: ignore[method-assign]
    worker.yielded.connect(yielded)
    worker.errored.connect(errored)
    worker.finished.connect(finished)
    worker.start()
    return worker

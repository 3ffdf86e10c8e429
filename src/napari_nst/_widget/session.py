"""A run's life in the dock: worker, record, output layer, progress, pause and continue.

The run is the core's step generator inside a napari generator ``thread_worker``.
Every layer update happens in the main thread from the worker's ``yielded``
signal; the session is reset on ``finished`` (which fires for success, cancel and
error alike), and references to the run are dropped there so memory is freed.

Pause is the generator worker's own: between two yields it stops pulling the
engine's generator, which keeps the optimiser (L-BFGS history included) as it was;
the iteration in flight finishes first. Weight boxes changed while a Gatys run goes
are sent into its generator (``worker.send``) and apply from its next iteration.
Continue runs ``run.continued(iterations)`` from where the last finished run
stopped, into the same output layer and the same run record. Full size goes on the
same way at the content's own resolution, from the result upsampled (one more
coarse-to-fine level, as neural-style's multi-resolution script does), into a new
layer whose record is the finished run's plus that continuation. Only that last run
is kept for them (it holds its inputs), until another run starts or its layer is
deleted. A finished wct or adain run is kept the same way for ``redecode(alpha)``:
the alpha slider decodes its last level again (in a worker) into the same layer.
"""

from __future__ import annotations

import copy
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from magicgui.widgets import Container, Label, PushButton
from napari.utils import progress
from napari.utils.notifications import show_error, show_info

from .. import _layers
from .._torch_in_gui import run_threads
from .._wording import for_gui
from .._workers import start_worker

if TYPE_CHECKING:
    import napari
    from napari.layers import Image

    from ..core import Step
    from ..core.provenance import RunRecord
    from ..core.step import Run
    from .loss_plot import LossPlot
    from .request import RunRequest


class RunSession:
    """Runs requests one at a time, and owns ``cancel``, ``pause``, ``resume``,
    ``continue_run``, ``full_size`` and the ``status`` line.

    ``weights()`` gives the loss weights to send into a running optimisation when they
    change (``weights_changed`` is to be connected to their boxes), ``iterations()``
    the length of a continuation, ``ended()`` is called once a run has wound down.
    """

    preview_interval = 0.1
    """Seconds between canvas updates; previews arriving faster are skipped (not the last)."""

    def __init__(
        self,
        viewer: napari.Viewer,
        loss_plot: LossPlot,
        *,
        weights: Callable[[], dict[str, float]],
        iterations: Callable[[], int],
        ended: Callable[[bool], None],
    ) -> None:
        self._viewer, self._plot = viewer, loss_plot
        self._weights, self._iterations, self._ended = weights, iterations, ended
        self.cancel = PushButton(name="cancel", text="Cancel", enabled=False)
        self.pause = PushButton(name="pause", text="Pause", enabled=False)
        self.pause.tooltip = "Hold the run after the current iteration; its state is kept."
        self.resume = PushButton(name="resume", text="Resume", enabled=False)
        self.continue_run = PushButton(name="continue_run", text="Continue", enabled=False)
        self.continue_run.tooltip = (
            "Run the last finished optimisation for `iterations` more, from where it "
            "stopped, into the same layer and record."
        )
        self.full_size = PushButton(name="full_size", text="Full size", enabled=False)
        self.full_size.tooltip = (
            "Go on at the content's own resolution from this result (one more "
            "coarse-to-fine level, `iterations` long) into a new layer: detail instead "
            "of the blur of enlarging it."
        )
        self.live_row = Container(name="live_control", layout="horizontal", labels=False)
        self.live_row.margins = (0, 0, 0, 0)
        self.live_row.extend([self.pause, self.resume, self.continue_run, self.full_size])
        self.status = Label(name="status", value="")
        self.status.native.setWordWrap(True)  # errors are read whole here

        self.request: RunRequest | None = None
        self.worker: Any = None
        self.record: RunRecord | None = None
        self.output: Image | None = None
        self.progress: progress | None = None
        self._target: Any = None
        self._finished: RunRequest | None = None  # what Continue / Full size go on from
        self._redecodable: tuple[Run, Any, Image, RunRecord, tuple[int, ...]] | None = None
        self._redecoding: Any = None
        self._pending_alpha: float | None = None
        self._last_index: tuple[int, ...] = ()
        self._last_preview = 0.0
        self._handling_step = self._finish_pending = False
        self._cancelling = self._announced = False
        self._queued_steps: deque[Step] = deque()

        self.cancel.changed.connect(self._on_cancel)
        self.pause.changed.connect(self._on_pause)
        self.resume.changed.connect(self._on_resume)
        self.continue_run.changed.connect(self._on_continue)
        self.full_size.changed.connect(self._on_full_size)
        viewer.layers.events.removed.connect(self._on_layer_removed)

    @property
    def running(self) -> bool:
        return self.worker is not None

    @property
    def run(self) -> Run | None:
        return self.request.run if self.request is not None else None

    def report(self, message: str) -> None:
        """An error as napari's pop-up (one elided line until expanded) and, whole and
        wrapped, in the status line, where it stays until the next run."""
        show_error(message)
        self.status.value = message

    # -- start ------------------------------------------------------------------------

    def start(self, request: RunRequest) -> None:
        from ..core.api import with_threads
        from ..core.provenance import RunRecord

        run = request.run
        self.request, self.output, self._target = request, request.output, request.target
        self.record = request.record or RunRecord(run.options.to_dict(), request.sources)
        self.progress = progress(total=run.planes * run.options.iterations, desc="Style transfer")
        self.progress.set_description(_STARTING[request.kind])
        self.cancel.enabled = True
        if not request.extends_curve:
            self._plot.clear()
        threads = run_threads()
        if request.record is None:
            self.record.threads = threads
        self.worker = start_worker(
            lambda: with_threads(run.steps(), threads),
            yielded=self._on_step,
            errored=self._on_error,
            finished=self._on_finished,
            cancel=run.cancel,
        )
        self._finished, self._cancelling, self._announced = None, False, False
        self._redecodable = None
        self.worker.paused.connect(self._on_paused)
        self.worker.resumed.connect(self._on_resumed)
        # A Dask stack's planes run on the cluster: holding the stream would not pause them.
        self.pause.enabled, self.resume.enabled = run.pausable, False
        self._refresh()

    # -- steps (main thread) ------------------------------------------------------------

    def _on_step(self, step: Step) -> None:
        # Handling a step can process Qt events (napari's progress bar, layer
        # creation), and with them the next steps and ``finished``: they queue up
        # and are handled in order here, never nested; teardown waits for them.
        self._queued_steps.append(step)
        if self._handling_step:
            return
        self._handling_step = True
        try:
            while self._queued_steps:
                step = self._queued_steps.popleft()
                record, bar = self.record, self.progress
                if record is None or bar is None:
                    continue
                self._take_step(step, record)
                if bar.total != step.total:  # fast runs count batches or planes
                    bar.total = step.total
                bar.update(step.iteration - bar.n)
        finally:
            self._handling_step = False
        if self._finish_pending:
            self._on_finished()

    def _take_step(self, step: Step, record: RunRecord) -> None:
        from ..core.optim import duration

        record.update(step)
        self._last_index = step.index
        self._plot.add(step)
        run = self.run
        if run is not None and (step.iteration == 1 or step.done or not record.info):
            record.info = run.info()
            if self.progress is not None:
                self.progress.set_description("Style transfer")
        where = f"slice {step.plane + 1}/{step.planes}  " if step.planes > 1 else ""
        loss = f"  loss {step.losses['total']:.4g}" if "total" in step.losses else ""
        left = f"  · about {duration(step.remaining)} left" if step.remaining is not None else ""
        self.status.value = f"{where}{step.iteration}/{step.total}{loss}{left}"
        self._announce(step)
        now = time.perf_counter()
        final = step.done or step.plane_done
        if step.image is not None and (final or now - self._last_preview >= self.preview_interval):
            self._last_preview = now
            self._show(step)
        self._publish_record()

    def _announce(self, step: Step) -> None:
        """Once per run, when its first estimate comes: a long run says how long it will
        take and what a smaller size would take."""
        run = self.run
        if step.remaining is None or self._announced or run is None:
            return
        self._announced = True
        from ..core.optim import long_run_note

        note = long_run_note(step.elapsed + step.remaining, max(run.shape), str(run.device))
        if note:
            show_info(f"Style transfer: {for_gui(note)}")

    def _show(self, step: Step) -> None:
        """Write the step's plane into the output layer (created on the first preview)."""
        request = self.request
        if request is None:
            return
        if self._target is None:
            rendering = request.run.rendering
            self._target = _layers.OutputTarget(
                request.selection, rendering.shape, rendering.dtype, rendering.fill
            )
        self._target.write(step.index, step.image)
        output = self.output
        if output is not None and output in self._viewer.layers:
            output.refresh(extent=False, highlight=False)
            return
        self.output = self._add_output_layer(request)

    def _add_output_layer(self, request: RunRequest) -> Image:
        assert self._target is not None and self.record is not None
        rendering, sweep = request.run.rendering, request.sweep
        add = sweep.add_layer if sweep is not None else _layers.add_output_layer
        geometry = _layers.output_geometry(
            request.selection, rendering.layout.plane_shape, rendering.result_plane
        )
        return add(
            self._viewer,
            self._target.array,
            request.name,
            geometry,
            self.record.to_dict(),
            rgb=rendering.kind != "gray",
            display=_layers.gray_display(rendering.contrast_limits, request.colormap),
        )

    def _publish_record(self) -> None:
        """Mirror the run record into the output layer (once that layer exists)."""
        if self.record is not None and self.output is not None and self.request is not None:
            record, sweep = self.record.to_dict(), self.request.sweep
            self.output.metadata[_layers.RECORD_KEY] = sweep.publish(record) if sweep else record

    # -- the end ------------------------------------------------------------------------

    def _on_error(self, exc: Exception) -> None:
        if self.record is not None:
            self.record.finish("failed", str(exc))
            self._publish_record()
        self.report(f"Style transfer failed: {for_gui(str(exc))}")

    def _on_finished(self) -> None:
        if self._handling_step:
            self._finish_pending = True
            return
        self._finish_pending = False
        record, request = self.record, self.request
        if record is not None and record.status == "running":
            record.finish("cancelled")
        self._publish_record()
        if self.progress is not None:
            self.progress.close()
        if record is not None and record.status != "failed":
            method = record.params.get("method", "gatys")
            done = (
                f"after {record.iteration} iterations"
                if method == "gatys"
                else f"({method}, {record.iteration} passes)"  # levels, tiles or batches
            )
            show_info(f"Style transfer {record.status} {done}")
        if record is None or record.status != "failed":  # a failure keeps its message
            self.status.value = record.status if record is not None else ""
        closing = self.worker is not None and self.worker.abort_requested  # viewer closing
        self.pause.enabled = self.resume.enabled = False
        keep = (
            request is not None
            and request.run.continuable
            and record is not None
            and record.status in ("done", "cancelled")
            and self.output is not None
            and self._target is not None
            and request.sweep is None
        )
        if keep:
            self._finished = request.continuing(request.run, record, self.output, self._target)
        redecodable = (
            request is not None and request.run.redecodable and record is not None
            and record.status == "done" and self.output is not None and self._target is not None
        )  # fmt: skip
        if redecodable:
            assert request is not None and record is not None and self.output is not None
            self._redecodable = (request.run, self._target, self.output, record, self._last_index)
        self._refresh(ending=True)
        self.worker = self.request = self.progress = self._target = None
        self.cancel.enabled = False
        self._ended(closing)

    # -- cancel, pause, resume --------------------------------------------------------

    def _on_cancel(self) -> None:
        if self.worker is None:
            return
        from ..core import STOP

        self._cancelling = True
        self.status.value = "cancelling…"
        self.cancel.enabled = self.pause.enabled = self.resume.enabled = False
        self.worker.resume()  # a paused run has to go on to see the stop
        self.run.cancel()  # also seen inside a line search and between setup stages
        # The engine answers STOP with one last step that holds the best image so far.
        self.worker.send(STOP)

    def _on_pause(self) -> None:
        if self.worker is None or self._cancelling:
            return
        self.worker.pause()
        if self.run is not None:
            self.run.hold(True)  # a run on a server: the server holds it too
        self.pause.enabled = False
        self.status.value = "pausing… (after the current iteration)"

    def _on_paused(self) -> None:
        record, worker = self.record, self.worker
        if worker is None:
            return
        if self._cancelling or (record is not None and record.status != "running"):
            worker.resume()  # a stop must reach the engine; a finished run must end
            return
        self.status.value = f"paused at iteration {record.iteration if record else 0}"
        self.resume.enabled = True
        if self.progress is not None:
            self.progress.set_description("Style transfer (paused)")

    def _on_resume(self) -> None:
        if self.worker is None:
            return
        if self.run is not None:
            self.run.hold(False)
        self.worker.resume()
        self.resume.enabled = False
        self.status.value = "resuming…"

    def _on_resumed(self) -> None:
        if self.worker is None or self._cancelling:
            return
        self.pause.enabled = True
        if self.progress is not None:
            self.progress.set_description("Style transfer")

    # -- weights changed while running --------------------------------------------------

    def weights_changed(self, _value: object = None) -> None:
        """Send the three weights into a running Gatys run (applied from its next iteration).

        A second send before that iteration replaces the first, hence all three.
        """
        worker, run = self.worker, self.run
        if worker is None or run is None or self._cancelling or not run.steerable:
            return
        values = self._weights()
        sweep = self.request.sweep if self.request is not None else None
        if sweep is not None and sweep.parameter in values:  # the swept value stays
            values[sweep.parameter] = float(getattr(run.options, sweep.parameter))
        worker.send(values)

    # -- continue ------------------------------------------------------------------------

    def _on_continue(self) -> None:
        finished = self._finished
        if finished is None or self.running:
            return
        if finished.output not in self._viewer.layers:
            self._forget()
            return
        iterations = self._iterations()
        try:
            run = finished.run.continued(iterations)
        except ValueError as exc:
            show_error(f"Style transfer: {exc}")
            return
        assert finished.record is not None
        finished.record.reopen(iterations)  # noted, so a recipe replays it
        self.start(finished.continuing(run, finished.record, finished.output, finished.target))

    def _on_full_size(self) -> None:
        finished = self._finished
        if finished is None or self.running or not _smaller_than_content(finished.run):
            return
        from ..core.devices import MemoryEstimateError

        size, iterations = finished.run.full_size, self._iterations()
        try:
            run = finished.run.continued(iterations, size=size)
        except MemoryEstimateError as exc:
            show_error(f"Full size: {exc}")
            return
        record = copy.deepcopy(finished.record)
        assert record is not None
        record.reopen(iterations, size=size)
        self.start(finished.at_full_size(run, record))
        if self.progress is not None:
            self.progress.set_description(f"Style transfer: full size ({size} px)")

    def _on_layer_removed(self, event: Any) -> None:
        if self._finished is not None and event.value is self._finished.output:
            self._forget()
        if self._redecodable is not None and event.value is self._redecodable[2]:
            self._redecodable = None

    # -- redecode (wct, adain) ----------------------------------------------------------

    @property
    def redecodable(self) -> bool:
        """A finished wct/adain run whose layer is still there can take another alpha."""
        kept = self._redecodable
        return kept is not None and not self.running and kept[2] in self._viewer.layers

    def redecode(self, alpha: float) -> None:
        """The last finished wct/adain result again with ``alpha``, into its layer; while
        one redecode runs, only the latest alpha asked for waits."""
        if not self.redecodable:
            return
        if self._redecoding is not None:
            self._pending_alpha = alpha
            return
        run, target, output, record, index = self._redecodable  # type: ignore[misc]

        def one() -> Any:
            yield run.redecoded(alpha)

        def show(image: Any) -> None:
            target.write(index, image)
            output.refresh(extent=False, highlight=False)
            record.params = run.options.to_dict()
            record.info = run.info()
            output.metadata[_layers.RECORD_KEY] = record.to_dict()
            self.status.value = f"redecoded with alpha {alpha:g}"

        def done() -> None:
            self._redecoding = None
            pending, self._pending_alpha = self._pending_alpha, None
            if pending is not None:
                self.redecode(pending)

        self._redecoding = start_worker(
            one, yielded=show, errored=lambda exc: self.report(str(exc)), finished=done
        )

    def _forget(self) -> None:
        self._finished = None
        self._refresh()

    def _refresh(self, ending: bool = False) -> None:
        """Continue and Full size are offered for a kept run whose layer is still there,
        while no run goes (``ending``: the run that just ended is still winding down)."""
        finished = self._finished
        available = (
            finished is not None
            and (ending or not self.running)
            and finished.output in self._viewer.layers
        )
        self.continue_run.enabled = available
        self.full_size.enabled = available and _smaller_than_content(finished.run)


_STARTING = {
    "new": "Style transfer: loading the VGG19",
    "sweep": "Style transfer: loading the VGG19",
    "continue": "Style transfer: continuing",
    "full size": "Style transfer: full size",
}


def _smaller_than_content(run: Run) -> bool:
    """A run that can go on, computed below the content's own resolution (Full size would
    add detail)."""
    return run.continuable and max(run.shape) < run.full_size

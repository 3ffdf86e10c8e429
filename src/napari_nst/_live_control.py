"""Live control of the Style Transfer widget's run: Pause / Resume, weights changed
while it runs, and Continue a finished run for more iterations.

Pause is the generator worker's own: between two yields it stops pulling the
engine's generator, which keeps the optimiser (L-BFGS history included) as it was;
the iteration in flight finishes first. Weight boxes changed while a Gatys run goes
are sent into its generator (``worker.send``) and apply from its next iteration.
Continue runs ``job.continued(iterations)`` from where the last finished run
stopped, into the same output layer and the same run record. Full size goes on the
same way at the content's own resolution, from the result upsampled (one more
coarse-to-fine level, as neural-style's multi-resolution script does), into a new
layer whose record is the finished run's plus that continuation. Only that last run
is kept for them (it holds its inputs), until another run starts or its layer is
deleted.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from magicgui.widgets import Container, PushButton
from napari.utils.notifications import show_error, show_info

from ._wording import for_gui

if TYPE_CHECKING:
    from ._widget import StyleTransferWidget

WEIGHTS = ("content_weight", "style_weight", "tv_weight")
"""The weights a running optimisation takes from the widget (all three on every change)."""


@dataclass
class _Finished:
    """What Continue needs of the last finished run."""

    job: Any
    record: Any
    output: Any
    target: Any
    spec: dict[str, Any]


class LiveControl:
    """Creates ``pause``, ``resume`` and ``continue_run`` on the widget and drives them."""

    def __init__(self, widget: StyleTransferWidget) -> None:
        self._widget = widget
        widget.pause = PushButton(name="pause", text="Pause", enabled=False)
        widget.pause.tooltip = "Hold the run after the current iteration; its state is kept."
        widget.resume = PushButton(name="resume", text="Resume", enabled=False)
        widget.continue_run = PushButton(name="continue_run", text="Continue", enabled=False)
        widget.continue_run.tooltip = (
            "Run the last finished optimisation for `iterations` more, from where it "
            "stopped, into the same layer and record."
        )
        widget.full_size = PushButton(name="full_size", text="Full size", enabled=False)
        widget.full_size.tooltip = (
            "Go on at the content's own resolution from this result (one more "
            "coarse-to-fine level, `iterations` long) into a new layer: detail instead "
            "of the blur of enlarging it."
        )
        row = Container(name="live_control", layout="horizontal", labels=False)
        row.margins = (0, 0, 0, 0)
        row.extend([widget.pause, widget.resume, widget.continue_run, widget.full_size])
        self.widgets = [row]
        self._finished: _Finished | None = None
        self._cancelling = self._announced = False
        widget.pause.changed.connect(self._on_pause)
        widget.resume.changed.connect(self._on_resume)
        widget.continue_run.changed.connect(self._on_continue)
        widget.full_size.changed.connect(self._on_full_size)
        widget.cancel.changed.connect(self._on_cancel)
        for name in WEIGHTS:
            getattr(widget, name).changed.connect(self._on_weight)
        widget._viewer.layers.events.removed.connect(self._on_layer_removed)

    # -- hooks called by the widget ------------------------------------------------

    def started(self, worker: Any) -> None:
        """A run has started (a new one, a queued one, or a continuation)."""
        self._finished, self._cancelling, self._announced = None, False, False
        from ._dask_stack import StackOnDask

        worker.paused.connect(self._on_paused)
        worker.resumed.connect(self._on_resumed)
        # A Dask stack's planes run on the cluster: holding the stream would not pause them.
        pausable = not isinstance(self._widget._job, StackOnDask)
        self._widget.pause.enabled, self._widget.resume.enabled = pausable, False
        self._refresh()

    def ended(self, job: Any, record: Any, output: Any, target: Any, spec: dict[str, Any]) -> None:
        """A run has ended; a finished or cancelled optimisation may be continued."""
        self._widget.pause.enabled = self._widget.resume.enabled = False
        keep = (
            hasattr(job, "continued")
            and record is not None
            and record.status in ("done", "cancelled")
            and output is not None
            and target is not None
            and "sweep" not in spec
        )
        self._finished = _Finished(job, record, output, target, spec) if keep else None
        self._refresh(ending=True)

    def announce(self, step: Any, job: Any) -> None:
        """Once per run, when its first estimate comes: a long run says how long it will
        take and what a smaller size would take."""
        if step.remaining is None or self._announced or job is None:
            return
        self._announced = True
        from .core.plane_run import long_run_note

        size, device = getattr(job.options, "size", None), str(getattr(job, "device", ""))
        note = size and long_run_note(step.elapsed + step.remaining, size, device)
        if note:
            show_info(f"Style transfer: {for_gui(note)}")

    # -- pause / resume -------------------------------------------------------------

    def _on_pause(self) -> None:
        worker = self._widget._worker
        if worker is None or self._cancelling:
            return
        worker.pause()
        self._widget.pause.enabled = False
        self._widget.status.value = "pausing… (after the current iteration)"

    def _on_paused(self) -> None:
        widget = self._widget
        record, worker = widget._record, widget._worker
        if worker is None:
            return
        if self._cancelling or (record is not None and record.status != "running"):
            worker.resume()  # a stop must reach the engine; a finished run must end
            return
        widget.status.value = f"paused at iteration {record.iteration if record else 0}"
        widget.resume.enabled = True
        if widget._progress is not None:
            widget._progress.set_description("Style transfer (paused)")

    def _on_resume(self) -> None:
        worker = self._widget._worker
        if worker is None:
            return
        worker.resume()
        self._widget.resume.enabled = False
        self._widget.status.value = "resuming…"

    def _on_resumed(self) -> None:
        widget = self._widget
        if widget._worker is None or self._cancelling:
            return
        widget.pause.enabled = True
        if widget._progress is not None:
            widget._progress.set_description("Style transfer")

    def _on_cancel(self) -> None:
        worker = self._widget._worker
        if worker is None:
            return
        self._cancelling = True
        self._widget.pause.enabled = self._widget.resume.enabled = False
        worker.resume()  # a paused run has to go on to see the stop

    # -- weights changed while running ----------------------------------------------

    def _on_weight(self, _value: object = None) -> None:
        """Send the three weights into a running Gatys run (applied from its next iteration).

        A second send before that iteration replaces the first, hence all three.
        """
        widget = self._widget
        worker, job = widget._worker, widget._job
        if worker is None or job is None or self._cancelling or not _optimises_here(job):
            return
        values = {name: float(getattr(widget, name).value) for name in WEIGHTS}
        sweep = widget._output_spec.get("sweep")
        if sweep is not None and sweep.parameter in values:  # the swept value stays
            values[sweep.parameter] = float(getattr(job.options, sweep.parameter))
        worker.send(values)

    # -- continue -------------------------------------------------------------------

    def _on_continue(self) -> None:
        widget, finished = self._widget, self._finished
        if finished is None or widget.running:
            return
        if finished.output not in widget._viewer.layers:
            self._forget()
            return
        try:
            job = finished.job.continued(widget.iterations.value)
        except ValueError as exc:
            show_error(f"Style transfer: {exc}")
            return
        self._finished = None
        finished.record.reopen(widget.iterations.value)  # noted, so a recipe replays it
        reuse = {"record": finished.record, "output": finished.output, "target": finished.target}
        widget._start(job, finished.spec | reuse)
        if widget._progress is not None:
            widget._progress.set_description("Style transfer: continuing")

    def _on_full_size(self) -> None:
        widget, finished = self._widget, self._finished
        if finished is None or widget.running or not _smaller_than_content(finished.job):
            return
        from .core.memory import MemoryEstimateError

        size = finished.job.full_size
        try:
            job = finished.job.continued(widget.iterations.value, size=size)
        except MemoryEstimateError as exc:
            show_error(f"Full size: {exc}")
            return
        record = copy.deepcopy(finished.record)
        record.reopen(widget.iterations.value, size=size)
        spec = {key: finished.spec[key] for key in ("selection", "sources", "colormap")}
        spec |= {"name": f"{finished.spec['name']} (full size)", "record": record}
        self._finished = None
        widget._start(job, spec)
        if widget._progress is not None:
            widget._progress.set_description(f"Style transfer: full size ({size} px)")

    def _on_layer_removed(self, event: Any) -> None:
        if self._finished is not None and event.value is self._finished.output:
            self._forget()

    def _forget(self) -> None:
        self._finished = None
        self._refresh()

    def _refresh(self, ending: bool = False) -> None:
        """Continue and Full size are offered for a kept run whose layer is still there,
        while no run goes (``ending``: the run that just ended is still winding down)."""
        finished = self._finished
        available = (
            finished is not None
            and (ending or not self._widget.running)
            and finished.output in self._widget._viewer.layers
        )
        self._widget.continue_run.enabled = available
        self._widget.full_size.enabled = available and _smaller_than_content(finished.job)


def _smaller_than_content(job: Any) -> bool:
    """A Gatys run computed below the content's own resolution (Full size would add detail)."""
    return _optimises_here(job) and max(job.shape) < job.full_size


def _optimises_here(job: Any) -> bool:
    """A Gatys run in this process (a Dask stack's planes cannot be reweighted)."""
    from .core.gatys import StyleTransfer

    return isinstance(job, StyleTransfer)

"""The *Style Transfer* dock widget: UI wiring only; the engine lives in ``core``.

The run is the core's step generator inside a napari generator ``thread_worker``.
Every layer update happens in the main thread from the worker's ``yielded``
signal; the UI is reset on ``finished`` (which fires for success, cancel and
error alike), and references to the run are dropped there so memory is freed.
"""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import (
    ComboBox,
    Container,
    FileEdit,
    Label,
    PushButton,
    SpinBox,
    create_widget,
)
from napari.utils import progress
from napari.utils.notifications import show_error, show_info

from . import _layers, _settings
from ._artistic import add_artistic_controls, artistic_options
from ._compare import add_compare_controls
from ._image_controls import add_image_controls, weight_box
from ._job_queue import JobQueue
from ._live_control import LiveControl
from ._loss_plot import add_loss_plot
from ._recipes import add_recipe_controls, controlled, fill_controls
from ._sections import SECTIONS, Section
from ._style_controls import add_style_controls, style_inputs, style_options
from ._sweep import SweepControls
from ._torch_in_gui import prepare_torch, run_threads
from ._wording import for_gui, tooltip
from ._workers import start_worker

if TYPE_CHECKING:
    import napari
    from napari.layers import Image
    from qtpy.QtWidgets import QScrollArea, QWidget

    from .core import Step, StyleTransfer
    from .core.record import RunRecord

WEIGHT_SOURCES = [
    ("bundled", "bundled"),
    ("torchvision", "torchvision"),
    ("caffe", "caffe"),
    ("random", "random"),
    ("file (torchvision layout)", "file"),
    ("file (Caffe layout: BGR 0-255)", "caffe file"),
]
"""The VGG19 sources: a local file in either layout (a Caffe-layout file read as
torchvision's would see wrong colours and scale)."""
FILE_SOURCES = {"file": "", "caffe file": "caffe:"}


class StyleTransferWidget(Container):
    """Pick content and style layers, set weights, Run; previews stream into one layer."""

    preview_interval = 0.1
    """Seconds between canvas updates; previews arriving faster are skipped (not the last)."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=False)  # napari docks ``.native``: the scroll area is ours
        prepare_torch()  # before anything imports torch in this (OpenGL) process
        from .core.devices import available_devices, default_size, resolve_device
        from .core.option_table import BY_NAME
        from .core.options import Options

        defaults = Options()
        self._gatys_size = default_size(resolve_device("auto"))  # 384 px on a CPU
        self._viewer = viewer
        self.content = create_widget(annotation="napari.layers.Image", name="content")
        self.style = create_widget(annotation="napari.layers.Image", name="style")
        self.method = ComboBox(
            name="method",
            choices=["gatys", "fast"],
            value="gatys",
            tooltip="gatys: optimise towards the style layer; fast: apply a trained model.",
        )
        self.content_weight = weight_box("content_weight", defaults.content_weight, step=0.01)
        self.style_weight = weight_box("style_weight", defaults.style_weight, step=0.1)
        self.tv_weight = weight_box("tv_weight", defaults.tv_weight, step=0.01)
        self.iterations = SpinBox(
            name="iterations", value=defaults.iterations, min=1, max=100_000, step=50
        )
        self.size = SpinBox(
            name="size",
            value=self._gatys_size,
            min=0,
            max=16384,
            step=64,
            tooltip="Longest side of the working image in px (gatys, 0: 384 px on a CPU, "
            "512 on a GPU; fast, 0: the image's own resolution).",
        )
        self.size.label = "size (0 = auto)"
        self.device = ComboBox(name="device", choices=available_devices(), value="auto")
        self.weights = ComboBox(
            name="weights",
            choices=WEIGHT_SOURCES,
            value="bundled" if defaults.weights == "auto" else defaults.weights,
            tooltip="bundled: the original VGG19, installed with napari-nst (offline); "
            "torchvision and caffe download ~550 MB once; random is not artistic.",
        )
        self.weights_file = FileEdit(
            name="weights_file", label="weights file", visible=False, filter="*.pth *.pt"
        )
        from .core.fast import sample_model

        self.checkpoint = FileEdit(
            name="checkpoint",
            visible=False,
            filter="*.pth *.pt *.safetensors",
            value=sample_model(),
        )
        self.checkpoint.tooltip = (
            "A fast-style model (pytorch/examples .pth, or trained here); it starts on "
            "The Starry Night, which comes with napari-nst."
        )
        self.seed = SpinBox(name="seed", value=defaults.seed, min=0, max=2**31 - 1)
        self.train = PushButton(name="train", text="Train a fast model…")
        self.run = PushButton(name="run", text="Run")
        self.fit_size = PushButton(name="fit_size", visible=False)
        self.fit_size.tooltip = "The largest size the memory estimate says fits."
        self.cancel = PushButton(name="cancel", text="Cancel", enabled=False)
        self.restore_defaults = PushButton(name="restore_defaults", text="Restore defaults")
        self.restore_defaults.tooltip = (
            "Every setting back to napari-nst's defaults (the last used ones come back "
            f"with napari; they are kept in {_settings.settings_file()})."
        )
        self.status = Label(name="status", value="")
        self.status.native.setWordWrap(True)  # errors are read whole here
        self._artistic = add_artistic_controls(self)
        self._styles = add_style_controls(self)
        self._live, self._sweeps = LiveControl(self), SweepControls(self)
        self.queue = JobQueue(self._start, lambda: self.running)
        image_controls, recipes = add_image_controls(self), add_recipe_controls(self)
        run_row = Container(name="run_row", layout="horizontal", labels=False)
        run_row.margins = (0, 0, 0, 0)
        run_row.extend([self.run, self.cancel])
        self.essentials = Container(name="essentials", labels=True, widgets=[
            self.content, self.style, self.method, self.checkpoint, *self._artistic[:2],
            self.size, self.iterations,
        ])  # fmt: skip
        self.essentials.margins = (0, 0, 0, 0)
        self.body = Container(name="body", labels=False, widgets=[
            self.essentials, self.fit_size, run_row, *self._live.widgets, self.status,
            self.queue,
        ])  # fmt: skip  # always in view; the rest in sections under the loss curve
        self.loss_plot = add_loss_plot(self.body)
        parts = {
            "look": [*self._artistic[2:], self.luminance_only, self.output_range,
                     self.output_size],
            "loss": [self.content_weight, self.style_weight, self.tv_weight],
            "styles": self._styles,
            "stacks": [self.stack, self.slice_weight, self.dask_scheduler],
            "engine": [self.device, self.weights, self.weights_file, self.seed, self.train],
            "explore": [*self._sweeps.widgets, *add_compare_controls(self)],
            "recipes": [*recipes, self.restore_defaults],
        }  # fmt: skip
        assert {*image_controls} <= {w for part in parts.values() for w in part}
        self.sections = {key: Section(key, SECTIONS[key], parts[key]) for key in SECTIONS}
        for section in self.sections.values():  # under the loss plot, closed
            self.body.native.layout().addWidget(section.native)
        self.body.native.layout().addStretch()
        self.native.layout().addWidget(_scrolling(self.body.native))
        self.margins = (0, 0, 0, 0)
        for name in controlled(self):  # every option's control explains itself the same way
            getattr(self, name).tooltip = tooltip(BY_NAME[name])

        self.content.changed.connect(self._on_content_changed)
        self._on_content_changed(self.content.value)  # the pickers both start on one layer
        self.restore_defaults.changed.connect(self._on_restore_defaults)
        self.weights.changed.connect(self._on_weights_changed)
        self.method.changed.connect(self._on_method_changed)
        self.train.changed.connect(self._on_train)
        self.run.changed.connect(self._on_run)
        self.fit_size.changed.connect(self._on_fit_size)
        self.cancel.changed.connect(self._on_cancel)

        self._fitting_size: int | None = None
        self._worker: Any = None
        self._job: StyleTransfer | None = None
        self._record: RunRecord | None = None
        self._output: Image | None = None
        self._target: _layers.OutputTarget | None = None
        self._output_spec: dict[str, Any] = {}
        self._progress: progress | None = None
        self._last_preview = 0.0
        self._handling_step = self._finish_pending = False
        self._queued_steps: deque[Step] = deque()
        self._defaults = self.options()
        remembered = _settings.load()
        if remembered:
            self._fill(remembered)

    # -- UI -> run ---------------------------------------------------------------

    def options(self) -> dict[str, Any]:
        """The widget's settings as engine options (same names as the CLI flags)."""
        weights = self.weights.value
        if weights in FILE_SOURCES:
            weights = FILE_SOURCES[weights] + str(self.weights_file.value)
        options = {
            "method": self.method.value,
            "checkpoint": str(self.checkpoint.value) if self.method.value == "fast" else None,
            "content_weight": self.content_weight.value,
            "style_weight": self.style_weight.value,
            "tv_weight": self.tv_weight.value,
            "iterations": self.iterations.value,
            "size": self.size.value or None,
            "device": self.device.value,
            "weights": weights,
            "seed": self.seed.value,
            "stack": self.stack.value,
            "slice_weight": self.slice_weight.value,
            "luminance_only": self.luminance_only.value,
            "output_range": self.output_range.value,
            "output_size": self.output_size.value,
        }
        return options | artistic_options(self) | style_options(self)

    def _on_run(self) -> None:
        """Start a run, or queue it behind the one going (validated now either way)."""
        from .core.memory import MemoryEstimateError

        self._offer_size(None)
        try:
            job, names = self._prepare()
        except MemoryEstimateError as exc:
            self._report(f"Style transfer: {for_gui(str(exc))}")
            self._offer_size(exc.fitting_size)
            return
        except ValueError as exc:
            self._report(f"Style transfer: {for_gui(str(exc))}")
            return
        _settings.save(self.options())  # the last used settings come back with napari
        self.queue.submit(job, names)

    def _offer_size(self, size: int | None) -> None:
        """After a too-big estimate, one click runs at the largest size that fits."""
        self._fitting_size = size
        if size is not None:
            self.fit_size.text = f"Run at {size} px instead"
        self.fit_size.visible = size is not None

    def _on_fit_size(self) -> None:
        if self._fitting_size is not None:
            self.size.value = self._fitting_size
            self._on_run()

    def _prepare(self, **overrides: Any) -> tuple[StyleTransfer, dict[str, Any]]:
        """The run the widget's settings describe (``overrides``: options that differ)."""
        from ._dask_stack import prepare_run

        content, style = self.content.value, self.style.value
        fast = self.method.value == "fast"
        if content is None or (style is None and not fast):
            raise ValueError("choose a content image layer and a style image layer")
        if content is style and not fast:
            raise ValueError("content and style are the same layer; pick a painting as style")
        selection = _layers.select(content, self._viewer, whole_stack=self.stack.value == "all")
        inputs = style_inputs(self, content, style, selection)
        job = prepare_run(
            selection.data,
            inputs.styles,
            self.dask_scheduler.value if self.stack.value == "all" else "",
            labels=inputs.labels,
            contrast_limits=_layers.gray_contrast_limits(content),
            spacing=selection.spacing,
            preview_every=max(1, self.iterations.value // 100),
            **(self.options() | overrides),
        )
        style_name = Path(str(self.checkpoint.value)).stem if fast else style.name
        spec = _layers.output_spec(content, style_name, selection)
        spec["sources"] |= inputs.sources
        return job, spec

    def _start(self, job: StyleTransfer, spec: dict[str, Any]) -> None:
        from .core.api import with_threads
        from .core.record import RunRecord

        self._job, self._output_spec = job, spec  # a continuation or sweep: record, layer…
        self._output, self._target = spec.get("output"), spec.get("target")
        self._record = spec.get("record") or RunRecord(job.options.to_dict(), spec["sources"])
        self._progress = progress(total=job.planes * job.options.iterations, desc="Style transfer")
        self._progress.set_description("Style transfer: loading VGG19 weights")
        self._set_running(True)
        if "record" not in spec:  # a continuation extends its run's curve
            self.loss_plot.clear()
        threads = run_threads()
        if "record" not in spec:
            self._record.threads = threads
        self._worker = start_worker(
            lambda: with_threads(job.steps(), threads),
            yielded=self._on_step,
            errored=self._on_error,
            finished=self._on_finished,
            cancel=job.cancel,
        )
        self._live.started(self._worker)

    def _on_cancel(self) -> None:
        if self._worker is None:
            return
        from .core import STOP

        self.status.value = "cancelling…"
        self.cancel.enabled = False
        if self._job is not None:
            self._job.cancel()  # also seen inside a line search and between setup stages
        # The engine answers STOP with one last step that holds the best image so far.
        self._worker.send(STOP)

    # -- run -> UI (main thread) ------------------------------------------------

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
                record, bar = self._record, self._progress
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
        from .core.plane_run import duration

        record.update(step)
        self.loss_plot.add(step)
        if self._job is not None and (step.iteration == 1 or step.done or not record.info):
            record.info = self._job.info()
            if self._progress is not None:
                self._progress.set_description("Style transfer")
        where = f"slice {step.plane + 1}/{step.planes}  " if step.planes > 1 else ""
        loss = f"  loss {step.losses['total']:.4g}" if "total" in step.losses else ""
        left = f"  · about {duration(step.remaining)} left" if step.remaining is not None else ""
        self.status.value = f"{where}{step.iteration}/{step.total}{loss}{left}"
        self._live.announce(step, self._job)
        now = time.perf_counter()
        final = step.done or step.plane_done
        if step.image is not None and (final or now - self._last_preview >= self.preview_interval):
            self._last_preview = now
            self._show(step)
        self._publish_record()

    def _show(self, step: Step) -> None:
        """Write the step's plane into the output layer (created on the first preview)."""
        job, spec = self._job, self._output_spec
        if self._target is None and job is not None:
            rendering = job.rendering
            self._target = _layers.OutputTarget(
                spec["selection"], rendering.shape, rendering.dtype, rendering.fill
            )
        if self._target is None:
            return
        self._target.write(step.index, step.image)
        output = self._output
        if output is not None and output in self._viewer.layers:
            output.refresh(extent=False, highlight=False)
            return
        self._output = self._add_output_layer()

    def _add_output_layer(self) -> Image:
        assert self._job is not None and self._target is not None and self._record is not None
        rendering, spec = self._job.rendering, self._output_spec
        add = spec["sweep"].add_layer if "sweep" in spec else _layers.add_output_layer
        geometry = _layers.output_geometry(
            spec["selection"], rendering.layout.plane_shape, rendering.result_plane
        )
        return add(
            self._viewer,
            self._target.array,
            spec["name"],
            geometry,
            self._record.to_dict(),
            rgb=rendering.kind != "gray",
            display=_layers.gray_display(rendering.contrast_limits, spec["colormap"]),
        )

    def _publish_record(self) -> None:
        """Mirror the run record into the output layer (once that layer exists)."""
        if self._record is not None and self._output is not None:
            record, sweep = self._record.to_dict(), self._output_spec.get("sweep")
            self._output.metadata[_layers.RECORD_KEY] = sweep.publish(record) if sweep else record

    def _on_error(self, exc: Exception) -> None:
        if self._record is not None:
            self._record.finish("failed", str(exc))
            self._publish_record()
        self._report(f"Style transfer failed: {for_gui(str(exc))}")

    def _report(self, message: str) -> None:
        """An error as napari's pop-up (one elided line until expanded) and, whole and
        wrapped, in the status line under Run, where it stays until the next run."""
        show_error(message)
        self.status.value = message

    def _on_finished(self) -> None:
        if self._handling_step:
            self._finish_pending = True
            return
        self._finish_pending = False
        record = self._record
        if record is not None and record.status == "running":
            record.finish("cancelled")
        self._publish_record()
        if self._progress is not None:
            self._progress.close()
        if record is not None and record.status != "failed":
            show_info(f"Style transfer {record.status} after {record.iteration} iterations")
        if record is None or record.status != "failed":  # a failure keeps its message
            self.status.value = record.status if record is not None else ""
        closing = self._worker is not None and self._worker.abort_requested  # viewer closing
        self._live.ended(self._job, record, self._output, self._target, self._output_spec)
        self._worker = self._job = self._progress = self._target = None
        self._output_spec = {}
        self._set_running(False)
        if closing:
            self.queue.drop_all()
        self.queue.start_next()

    def _set_running(self, running: bool) -> None:
        self.run.text = "Add to queue" if running else "Run"
        self.cancel.enabled = running

    def _on_method_changed(self, method: str) -> None:
        """Show what the method uses: the optimisation's knobs, or a model file."""
        gatys = method == "gatys"
        for widget in (self.style, self.content_weight, self.style_weight, self.tv_weight,
                       self.iterations, self.weights, self.seed, *self._artistic,
                       *self._styles, *self._sweeps.widgets):  # fmt: skip
            widget.visible = gatys
        self.weights_file.visible = gatys and self.weights.value in FILE_SOURCES
        self.checkpoint.visible = not gatys
        self._show_sections()
        if not gatys and self.size.value == self._gatys_size:
            self.size.value = 0  # fast models paint at the image's own resolution
        elif gatys and self.size.value == 0:
            self.size.value = self._gatys_size

    def reset_choices(self, *args: Any) -> None:
        """Follow the viewer's layers (napari calls this when they change), keeping the
        style on another layer than the content where there is one."""
        super().reset_choices(*args)
        if hasattr(self, "body"):  # in a scroll area: Qt's children, not magicgui's
            self.body.reset_choices()
            for section in self.sections.values():
                section.reset_choices()
        self._distinct_style()

    def __getitem__(self, key: Any) -> Any:
        """A control by name (``widget["style_weight"]``), in the essentials or a section."""
        if isinstance(key, str):
            parts = (self.body, self.essentials, *(s.controls for s in self.sections.values()))
            for part in parts:
                if key in {w.name for w in part}:
                    return part[key]
        return super().__getitem__(key)

    def _on_content_changed(self, *_: Any) -> None:
        self._distinct_style()
        self._show_sections()

    def _show_sections(self) -> None:
        """Hide a section whose controls are all hidden, and the stack controls for an
        image that is one plane."""
        content = self.content.value
        stack = content is not None and content.ndim > (3 if content.rgb else 2)
        for key, section in self.sections.items():
            shown = any(not w.native.isHidden() for w in section.controls)
            section.visible = shown and (stack or key != "stacks")

    def _on_restore_defaults(self) -> None:
        self._fill(self._defaults)
        self.status.value = "defaults restored"

    def _fill(self, options: dict[str, Any]) -> None:
        """Set the controls from ``options`` (remembered ones may be from another version:
        what no longer fits is left at the default)."""
        try:
            fill_controls(self, options, None)
        except (ValueError, TypeError, KeyError):
            fill_controls(self, self._defaults, None)

    def _distinct_style(self, *_: Any) -> None:
        content = self.content.value
        if content is None or self.style.value is not content:
            return
        other = next((layer for layer in self.style.choices if layer is not content), None)
        if other is not None:
            self.style.value = other

    def _on_train(self) -> None:
        self._viewer.window.add_plugin_dock_widget("napari-nst", "Train Fast Style")

    def _on_weights_changed(self, value: str) -> None:
        self.weights_file.visible = value in FILE_SOURCES

    @property
    def running(self) -> bool:
        return self._worker is not None


def _scrolling(content: QWidget) -> QScrollArea:
    """``content`` in a vertical scroll area that fits the dock's width (napari docks a
    magicgui widget's ``.native``, which leaves magicgui's own scroll area out)."""
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QFrame, QScrollArea

    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
    area.setWidget(content)
    return area

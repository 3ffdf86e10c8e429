"""The *Style Transfer* dock: composes the essentials, the sections and the run session.

Each part stands alone (:mod:`.essentials`, :mod:`.sections`, :mod:`.styles`,
:mod:`.explore`, :mod:`.recipes`; :mod:`.session` for a run's life) and never
reaches into the dock; the dock wires what one part changes in another, turns the
parts' options into a :class:`~.request.RunRequest`, and keeps every control
reachable by name (``dock["style_weight"]``, ``dock.style_weight``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import Container, PushButton, Widget

from .. import _layers
from .._torch_in_gui import prepare_torch
from .._wording import for_gui
from . import settings
from .controls import Section
from .essentials import Essentials
from .explore import ExploreSection
from .loss_plot import LossPlot
from .queue import JobQueue
from .recipes import RecipesSection
from .request import RunRequest
from .sections import EngineSection, LookSection, LossSection, StacksSection
from .session import RunSession
from .styles import StylesSection

if TYPE_CHECKING:
    import napari
    from napari.layers import Image
    from qtpy.QtWidgets import QScrollArea, QWidget

    from ..core.step import Run

FROM_LAYER = frozenset({"contrast_limits", "spacing"})
"""Options that come from the content layer; the dock has no control for them."""


class StyleTransferWidget(Container):
    """Pick content and style layers, set weights, Run; previews stream into one layer."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=False)  # napari docks ``.native``: the scroll area is ours
        prepare_torch()  # before anything imports torch in this (OpenGL) process
        from ..core.devices import default_size, resolve_device

        self._viewer = viewer
        self.essentials = Essentials(default_size(resolve_device("auto")), self._want_weights)
        self.look, self.loss, self.stacks = LookSection(), LossSection(), StacksSection()
        self.engine, self.styles_section = EngineSection(), StylesSection(viewer)
        self.run = PushButton(name="run", text="Run")
        self.fit_size = PushButton(name="fit_size", visible=False)
        self.fit_size.tooltip = "The largest size the memory estimate says fits."
        self.body = Container(name="body", labels=False)
        self.loss_plot = LossPlot()
        self.session = RunSession(
            viewer, self.loss_plot, weights=self.loss.weights,
            iterations=lambda: self.essentials.iterations.value, ended=self._on_run_ended,
        )  # fmt: skip
        self.queue = JobQueue(self.session.start, lambda: self.session.running)
        self.explore = ExploreSection(
            viewer, options=self.options, prepare=self.prepare, submit=self.queue.submit,
            inputs=lambda: (self.essentials.content.value, self.essentials.style.value),
            output=lambda: self.session.output,
        )  # fmt: skip
        self.recipes = RecipesSection(
            viewer, self.set_options, self._on_restore_defaults, settings.settings_file()
        )
        self.sections: dict[str, Section] = {
            section.name: section
            for section in (self.look, self.loss, self.styles_section, self.stacks,
                            self.engine, self.explore, self.recipes)
        }  # fmt: skip
        self._lay_out()

        content = self.essentials.content
        content.changed.connect(self.look.follow_content)
        content.changed.connect(self._show_sections)
        self.look.follow_content(content.value)
        self.essentials.method.changed.connect(self._on_method_changed)
        for box in self.loss.option_controls().values():
            box.changed.connect(self.session.weights_changed)
        self.engine.train.changed.connect(self._on_train)
        self.essentials.alpha.changed.connect(self.session.redecode)
        self.run.changed.connect(self._on_run)
        self.fit_size.changed.connect(self._on_fit_size)
        self._fitting_size: int | None = None
        self._on_method_changed(self.essentials.method.value)
        self._defaults = self.options()
        remembered = settings.load()
        if remembered:
            self._fill(remembered)

    def _lay_out(self) -> None:
        """The essentials, Run, live controls, status, queue and loss curve always in view;
        the sections under them, closed; all in a scroll area of our own."""
        self._run_row = Container(name="run_row", layout="horizontal", labels=False)
        self._run_row.margins = (0, 0, 0, 0)
        self._run_row.extend([self.run, self.session.cancel])
        session = self.session
        self.body.extend([
            self.essentials, self.fit_size, self._run_row, session.live_row, session.status,
            self.queue,
        ])  # fmt: skip
        layout = self.body.native.layout()
        layout.addWidget(self.loss_plot)
        for section in self.sections.values():
            layout.addWidget(section.native)
        layout.addStretch()
        self.native.layout().addWidget(_scrolling(self.body.native))
        self.margins = (0, 0, 0, 0)

    # -- controls by name ------------------------------------------------------------------

    def _parts(self) -> list[Container]:
        parts = [self.body, self.essentials, self._run_row, self.session.live_row]
        return parts + [section.controls for section in self.sections.values()]

    def __getitem__(self, key: Any) -> Any:
        """A control by name (``widget["style_weight"]``), in the essentials or a section."""
        if isinstance(key, str):
            key = _current_control_name(key)
            for part in self._parts():
                if key in {w.name for w in part}:
                    return part[key]
            raise KeyError(key)
        return super().__getitem__(key)

    def __getattr__(self, name: str) -> Any:
        """Controls are attributes too (``widget.style_weight``), as scripts use them."""
        if not name.startswith("_") and "sections" in self.__dict__:
            try:
                return self[name]
            except (KeyError, IndexError):
                pass
        raise AttributeError(name)

    def controlled(self) -> list[str]:
        """The options of the option table that the dock has a control for."""
        from ..core.options import TABLE

        names = []
        for spec in TABLE:
            try:
                control = self[spec.name]
            except (KeyError, IndexError):
                continue
            if isinstance(control, Widget) and hasattr(control, "value"):
                names.append(spec.name)
        return names

    # -- options ------------------------------------------------------------------------

    def options(self) -> dict[str, Any]:
        """The dock's settings as engine options (same names as the CLI flags)."""
        options = self.essentials.options()
        for section in self.sections.values():
            options |= section.options()
        return options

    def set_options(self, options: dict[str, Any], sources: object = None) -> list[str]:
        """Set every control from ``options`` (and pick the layers ``sources`` names); the
        notes on options no control stands for or that could not be set."""
        from ..core.options import Options, current_names

        options = current_names(options, warn=False)  # settings and records of earlier versions
        defaults = Options().to_dict()
        values = defaults | options
        self.essentials.set_options(values)  # first: method, preset, strength
        self.essentials.set_layers(sources)
        notes: list[str] = []
        for section in self.sections.values():
            notes += section.set_options(values)
        notes += self._match_layer(values)
        controlled = {*self.controlled(), *FROM_LAYER}
        notes += [
            f"{key}={value!r}"
            for key, value in options.items()
            if key not in controlled and value != defaults[key]
        ]
        return notes

    def _want_weights(self, values: dict[str, float]) -> None:
        """A preset or the strength slider asks for loss weights (and a style scale)."""
        for name, value in values.items():
            self[name].value = value

    def _match_layer(self, values: dict[str, Any]) -> list[str]:
        """Gray content's window is the run's: restore it; report a different pixel size."""
        content = self.essentials.content.value
        if content is None:
            return []
        limits = values["contrast_limits"]
        if limits is not None and not content.rgb:
            content.contrast_limits = limits
        axes = _layers.displayed_axes(content, self._viewer)
        spacing = values["spacing"]
        if spacing is not None and [abs(float(content.scale[a])) for a in axes] != list(spacing):
            return [f"spacing={spacing!r} (the content layer's pixel size differs)"]
        return []

    def _fill(self, options: dict[str, Any]) -> None:
        """Set the controls from ``options`` (remembered ones may be from another version:
        what no longer fits is left at the default)."""
        try:
            self.set_options(options)
        except (ValueError, TypeError, KeyError):
            self.set_options(self._defaults)

    def _on_restore_defaults(self) -> None:
        self._fill(self._defaults)
        self.session.status.value = "defaults restored"

    # -- run ----------------------------------------------------------------------------

    def prepare(self, **overrides: Any) -> RunRequest:
        """The run the dock's settings describe (``overrides``: options that differ)."""
        from ..batch.stack import prepare_run

        content: Image | None = self.essentials.content.value
        style: Image | None = self.essentials.style.value
        fast = self.essentials.method.value == "fast"  # the model is the style
        if content is None or (style is None and not fast):
            raise ValueError("choose a content image layer and a style image layer")
        if content is style and not fast:
            raise ValueError("content and style are the same layer; pick a painting as style")
        selection = _layers.select(content, self._viewer, whole_stack=self.stacks.whole_stack)
        scheduler = self.stacks.scheduler
        styles, labels, sources = None, None, {}
        if not fast:
            assert style is not None
            inputs = self.styles_section.inputs(content, style, selection, scheduler)
            styles, labels, sources = inputs.styles, inputs.labels, inputs.sources
        options = dict(
            labels=labels,
            contrast_limits=_layers.gray_contrast_limits(content),
            spacing=selection.spacing,
            preview_every=max(1, self.essentials.iterations.value // 100),
            **(self.options() | overrides),
        )
        server = self.engine.server_url
        if server and scheduler:
            raise ValueError("run on a server or on a Dask scheduler, not both")
        if server:
            from ..server.client import RemoteRun

            run: Run = RemoteRun(server, selection.data, styles, **options)
        else:
            run = prepare_run(selection.data, styles, scheduler, **options)
        checkpoint = Path(str(self.essentials.checkpoint.value))
        style_name = checkpoint.stem if fast else style.name  # type: ignore[union-attr]
        output = _layers.output_spec(content, style_name, selection)
        return RunRequest(
            run, output["name"], selection, output["sources"] | sources, output["colormap"]
        )

    def _on_run(self) -> None:
        """Start a run, or queue it behind the one going (validated now either way)."""
        from ..core.devices import MemoryEstimateError

        self._offer_size(None)
        try:
            request = self.prepare()
        except MemoryEstimateError as exc:
            self.session.report(f"Style transfer: {for_gui(str(exc))}")
            self._offer_size(exc.fitting_size)
            return
        except ValueError as exc:
            self.session.report(f"Style transfer: {for_gui(str(exc))}")
            return
        settings.save(self.options())  # the last used settings come back with napari
        self.queue.submit(request)
        self.run.text = "Add to queue" if self.session.running else "Run"

    def _on_run_ended(self, closing: bool) -> None:
        self.run.text = "Run"
        if closing:  # the viewer is closing: nothing more starts
            self.queue.drop_all()
        if self.queue.start_next():
            self.run.text = "Add to queue"

    def _offer_size(self, size: int | None) -> None:
        """After a too-big estimate, one click runs at the largest size that fits."""
        self._fitting_size = size
        if size is not None:
            self.fit_size.text = f"Run at {size} px instead"
        self.fit_size.visible = size is not None

    def _on_fit_size(self) -> None:
        if self._fitting_size is not None:
            self.essentials.size.value = self._fitting_size
            self._on_run()

    @property
    def running(self) -> bool:
        return self.session.running

    # -- what shows --------------------------------------------------------------------

    def _on_method_changed(self, method: str) -> None:
        self.loss_plot.setVisible(method == "gatys")  # the one-pass methods have no losses
        for section in self.sections.values():
            section.set_method(method)
        self._show_sections()

    def _show_sections(self, *_: Any) -> None:
        """Hide a section none of whose controls applies, and the stack controls for an
        image that is one plane."""
        stack = self.essentials.is_stack
        for key, section in self.sections.items():
            section.visible = section.has_visible_controls and (stack or key != "stacks")

    def reset_choices(self, *args: Any) -> None:
        """Follow the viewer's layers (napari calls this when they change), keeping the
        style on another layer than the content where there is one."""
        super().reset_choices(*args)
        if "sections" in self.__dict__:  # in a scroll area: Qt's children, not magicgui's
            self.body.reset_choices()
            for section in self.sections.values():
                section.reset_choices()
            self.essentials.distinct_style()

    def _on_train(self) -> None:
        self._viewer.window.add_plugin_dock_widget("napari-nst", "Train Fast Style")


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


def _current_control_name(name: str) -> str:
    """A control's name today: controls named after a renamed option (``weights``, now
    ``vgg``) are found by the old name too, with a DeprecationWarning."""
    import warnings

    from ..core.options import RENAMED

    old = name.removesuffix("_file")
    if old not in RENAMED:
        return name
    new = RENAMED[old] + name[len(old) :]
    warnings.warn(f"control {name!r} is now {new!r}", DeprecationWarning, stacklevel=4)
    return new

"""The Style Transfer widget's comparison controls: compare, link results, fade.

*Compare* is a view, not an edit: it remembers the grid settings, the camera and
every layer's visibility, shows content, style and results in napari's grid, and
the second press puts back exactly what was there, so a user can flip between
"my session" and "side by side" freely. Links it made to tie the results' display
(opacity, contrast, gamma, visibility) are undone with it, and only those: links
the user made in napari's layer menu stay. *Fade* shows the latest result over
its content in the normal view and leaves the result as it found it at 1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from magicgui.widgets import CheckBox, FloatSlider, PushButton, Widget

from .._layers import RECORD_KEY

if TYPE_CHECKING:
    from napari.layers import Layer

LINKED = ("opacity", "contrast_limits", "gamma", "visible")
"""What linked results share: what a user tunes to compare results fairly."""


@dataclass
class _Saved:
    """The view before *compare*: restored as it was, for layers still there."""

    grid: dict[str, Any]
    camera: dict[str, Any]
    visible: list[tuple[Layer, bool]]
    links: list[tuple[Any, Any, str]] = field(default_factory=list)


@dataclass
class _Faded:
    """The faded result's own display, and its content's visibility, to put back."""

    result: Layer
    opacity: float
    blending: str
    visible: bool
    content: Layer | None
    content_visible: bool


def results(viewer: Any) -> list[Layer]:
    """Layers written by napari-nst runs (their metadata holds the run record)."""
    return [layer for layer in viewer.layers if RECORD_KEY in layer.metadata]


def _grid(viewer: Any) -> Any:
    canvas = getattr(viewer, "canvas", None)  # napari ≥ 0.9 moved the grid there
    return canvas.grid if canvas is not None and hasattr(canvas, "grid") else viewer.grid


def _camera(viewer: Any) -> Any:
    scene = getattr(viewer, "scene", None)  # napari ≥ 0.9 moved the camera there
    return scene.camera if scene is not None and hasattr(scene, "camera") else viewer.camera


class CompareControls:
    """State and handlers behind ``compare``, ``link_results`` and ``fade``.

    ``inputs()`` gives the content and style layers picked now, ``output()`` the
    latest run's layer (or None).
    """

    def __init__(
        self,
        viewer: Any,
        inputs: Callable[[], tuple[Layer | None, Layer | None]],
        output: Callable[[], Layer | None],
    ) -> None:
        self._viewer, self._inputs, self._output = viewer, inputs, output
        self._saved: _Saved | None = None
        self._faded: _Faded | None = None
        self.compare = PushButton(name="compare", text="Compare side by side")
        self.compare.native.setCheckable(True)
        self.compare.tooltip = (
            "Content, style and results side by side in napari's grid; "
            "press again for the view as it was."
        )
        self.link_results = CheckBox(name="link_results", text="link results", value=True)
        self.link_results.tooltip = (
            "While comparing, results share opacity, contrast, gamma and visibility."
        )
        self.fade = FloatSlider(name="fade", value=1.0, min=0.0, max=1.0, step=0.05)
        self.fade.tooltip = "Fade the latest result over its content (1 = result only)."
        # A click toggles the button and then emits ``clicked``; a script's
        # ``compare.value = True`` only toggles it; ``clicked.emit()`` only emits.
        self.compare.native.toggled.connect(self._set_comparing)
        self.compare.changed.connect(self._on_clicked)
        self.link_results.changed.connect(self._on_link_changed)
        self.fade.changed.connect(self._set_fade)
        self._viewer.layers.events.inserted.connect(self._on_inserted)

    @property
    def widgets(self) -> list[Widget]:
        return [self.compare, self.link_results, self.fade]

    @property
    def comparing(self) -> bool:
        return self._saved is not None

    # -- compare ----------------------------------------------------------------

    def _on_clicked(self, *args: Any) -> None:
        if not args:  # emitted by code, not by Qt: the button was not toggled
            self.compare.native.toggle()

    def _set_comparing(self, on: bool) -> None:
        if on == self.comparing:
            return
        if on:
            self._enter()
        else:
            self._leave()

    def _shown(self) -> list[Layer]:
        """Content, style, then results, each once and only if still in the viewer."""
        picked = [*self._inputs(), *results(self._viewer)]
        shown: list[Layer] = []
        for layer in picked:
            if layer is not None and layer in self._viewer.layers and layer not in shown:
                shown.append(layer)
        return shown

    def _enter(self) -> None:
        self.fade.value = 1.0  # a faded result would be compared faded
        viewer, grid = self._viewer, _grid(self._viewer)
        names = ("enabled", "shape", "stride", "spacing")
        self._saved = _Saved(
            grid={name: getattr(grid, name) for name in names if hasattr(grid, name)},
            camera={"center": _camera(viewer).center, "zoom": _camera(viewer).zoom},
            visible=[(layer, layer.visible) for layer in viewer.layers],
        )
        shown = self._shown()
        for layer in viewer.layers:
            layer.visible = layer in shown
        count = max(len(shown), 1)
        # The bottom layer fills the first cell: content, style, then results in
        # the order they were made, as long as the layer list is in that order.
        grid.stride = -1
        grid.shape = (1, count) if count <= 4 else (-1, -1)
        grid.enabled = True
        viewer.reset_view()
        self._link()
        self.compare.text = "Back from compare"

    def _leave(self) -> None:
        saved, self._saved = self._saved, None
        if saved is None:
            return
        self._unlink(saved)
        grid = _grid(self._viewer)
        for name, value in saved.grid.items():
            setattr(grid, name, value)
        for layer, visible in saved.visible:
            if layer in self._viewer.layers:
                layer.visible = visible
        camera = _camera(self._viewer)
        camera.center, camera.zoom = saved.camera["center"], saved.camera["zoom"]
        self.compare.text = "Compare side by side"

    # -- link ---------------------------------------------------------------------

    def _link(self) -> None:
        """Link results of one kind (RGB or gray, same dtype): contrast limits of a
        uint8 colour result mean nothing to a float gray one."""
        from napari.experimental import link_layers

        if self._saved is None or not self.link_results.value:
            return
        kinds: dict[tuple[bool, str], list[Layer]] = {}
        for layer in results(self._viewer):
            kinds.setdefault((bool(layer.rgb), str(layer.dtype)), []).append(layer)
        for group in kinds.values():
            if len(group) > 1:  # returns only new links: a user's own are left alone
                self._saved.links += link_layers(group, LINKED)

    def _unlink(self, saved: _Saved) -> None:
        from napari.experimental import unlink_layers

        for first, second, attribute in saved.links:
            pair = [first(), second()]  # weak references
            if None not in pair:
                unlink_layers(pair, [attribute])
        saved.links = []

    def _on_link_changed(self, link: bool) -> None:
        if self._saved is None:
            return
        if link:
            self._link()
        else:
            self._unlink(self._saved)

    def _on_inserted(self, event: Any) -> None:
        """A result made while comparing joins the comparison (and its links)."""
        if self._saved is not None and RECORD_KEY in event.value.metadata:
            self._link()

    # -- fade -----------------------------------------------------------------------

    def _latest(self) -> Layer | None:
        output = self._output()
        if output is not None and output in self._viewer.layers:
            return output
        found = results(self._viewer)
        return found[-1] if found else None

    def _set_fade(self, opacity: float) -> None:
        if opacity >= self.fade.max:
            self._unfade()
            return
        result = self._latest()
        if result is None:
            return
        if self._faded is not None and self._faded.result is not result:
            self._unfade()
        if self._faded is None:
            self.compare.value = False  # a faded result is one picture, not a grid
            content = self._inputs()[0]
            self._faded = _Faded(
                result,
                result.opacity,
                str(result.blending),
                result.visible,
                content,
                content is not None and content.visible,
            )
            result.blending = "translucent"
            result.visible = True
            if content is not None:
                content.visible = True
        result.opacity = opacity

    def _unfade(self) -> None:
        faded, self._faded = self._faded, None
        if faded is None:
            return
        result = faded.result
        result.opacity, result.blending = faded.opacity, faded.blending
        result.visible = faded.visible
        if faded.content is not None:
            faded.content.visible = faded.content_visible

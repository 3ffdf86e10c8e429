"""The Style Transfer widget's controls for several styles and styles per region.

The ``style`` picker stays the one required style (its name and behaviour are a
public contract); ``styles`` only *adds* layers to it, so a run with one style is
exactly the run it always was. The engine gets ``[style, *styles]`` in viewer
order, the order the user sees in the layer list, so ``style_blend_weights`` and
the indices in ``label_styles`` mean the same as they do on the command line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from magicgui.widgets import ComboBox, LineEdit, Select, Widget

from . import _layers

if TYPE_CHECKING:
    import napari
    from napari.layers import Image, Labels

    from ._widget import StyleTransferWidget

LIST_ROWS = 4
"""Rows the additional-styles list shows before it scrolls (the dock is tall already)."""


class LayerSelect(Select):
    """A multi-select of layers whose selection survives a layer being renamed.

    magicgui matches list items by their text, so a renamed layer would come
    back unselected; the chosen layers are remembered by identity instead.
    """

    def reset_choices(self, *_: Any) -> None:
        chosen = list(self.value)
        super().reset_choices()
        self.value = [layer for layer in chosen if layer in self.choices]


@dataclass(frozen=True)
class StyleInputs:
    """What the engine reads for a gatys run, and the layers the record names."""

    styles: Any = None  # one array, or a list for several styles
    labels: Any = None
    sources: dict[str, Any] = field(default_factory=dict)


def add_style_controls(widget: StyleTransferWidget) -> list[Widget]:
    """Create ``styles``, ``style_blend_weights``, ``labels`` and ``label_styles`` on
    ``widget`` (reachable by name); their choices follow the viewer's layers."""
    from napari.layers import Image, Labels

    viewer = widget._viewer
    widget.styles = LayerSelect(
        name="styles",
        label="more styles",
        choices=lambda _: [layer for layer in viewer.layers if isinstance(layer, Image)],
        tooltip="Image layers blended with the style (none selected: the style alone).",
    )
    rows = widget.styles.native.fontMetrics().height() * (LIST_ROWS + 1)
    widget.styles.native.setMaximumHeight(rows)
    widget.style_blend_weights = LineEdit(name="style_blend_weights", value="")
    widget.style_blend_weights.label = "blend weights"
    widget.style_blend_weights.tooltip = (
        "One weight per style, the style first, then the others in layer-list order "
        "(e.g. 0.7,0.3); blank: equal."
    )
    widget.labels = ComboBox(
        name="labels",
        choices=lambda _: [layer for layer in viewer.layers if isinstance(layer, Labels)],
        nullable=True,
        value=None,
        tooltip="A Labels layer the size of the content plane: a style per region (----- = off).",
    )
    widget.label_styles = LineEdit(name="label_styles", value="")
    widget.label_styles.label = "label styles"
    widget.label_styles.tooltip = (
        "label:style index (0 = the style) or label:content, e.g. 1:0,2:1,3:content; "
        "unlisted labels take the blend."
    )
    return [widget.styles, widget.style_blend_weights, widget.labels, widget.label_styles]


def style_options(widget: StyleTransferWidget) -> dict[str, Any]:
    """The engine options these controls stand for (text as on the command line)."""
    if widget.method.value != "gatys":
        return {}
    return {
        "style_blend_weights": widget.style_blend_weights.value.strip() or None,
        "label_styles": widget.label_styles.value.strip() or None,
    }


def style_inputs(
    widget: StyleTransferWidget, content: Image, style: Image, selection: _layers.Selection
) -> StyleInputs:
    """The style plane(s) and label plane for a gatys run; ``ValueError`` if they cannot be.

    Each style is the plane the viewer shows, copied (as the style always was);
    the labels are the plane of the Labels layer that matches the content's.
    """
    if widget.method.value != "gatys":
        return StyleInputs()
    viewer = widget._viewer
    chosen = widget.styles.value
    extra = [layer for layer in viewer.layers if layer in chosen]
    for layer in extra:
        if layer is content:
            raise ValueError(f"'{layer.name}' is the content; it cannot also be a style")
        if layer is style:
            raise ValueError(
                f"'{layer.name}' is the style already; select only the other styles in "
                "'more styles'"
            )
    styles = [_layers.select(layer, viewer, False).data for layer in (style, *extra)]
    sources: dict[str, Any] = {}
    if extra:
        sources["style"] = [layer.name for layer in (style, *extra)]
    labels_layer: Labels | None = widget.labels.value
    labels = None
    if labels_layer is not None:
        labels = _label_plane(labels_layer, content, selection, viewer, widget)
        sources["labels"] = labels_layer.name
    return StyleInputs(styles if extra else styles[0], labels, sources)


def _label_plane(
    layer: Labels,
    content: Image,
    selection: _layers.Selection,
    viewer: napari.Viewer,
    widget: StyleTransferWidget,
) -> Any:
    """One label plane: the engine applies it to every plane of a whole-stack run."""
    if widget.stack.value == "all" and widget.dask_scheduler.value.strip():
        raise ValueError(
            "labels (styles per region) run in napari's process; clear the Dask scheduler"
        )
    if layer.ndim != 2:
        if layer.ndim != content.ndim:
            raise ValueError(
                f"the labels layer '{layer.name}' has {layer.ndim} dimensions but the content "
                f"'{content.name}' has {content.ndim}; use a 2-D Labels layer or one the "
                "content's shape"
            )
        if selection.index is None:
            raise ValueError(
                f"a whole-stack run uses one label plane for every plane, but '{layer.name}' "
                "is a stack; use a 2-D Labels layer, or run the current slice"
            )
    return _layers.select(layer, viewer, False).data

"""The *More styles & regions* section: several styles, and a style per region.

The ``style`` picker stays the one required style (its name and behaviour are a
public contract); ``styles`` only *adds* layers to it, so a run with one style is
exactly the run it always was. The engine gets ``[style, *styles]`` in viewer
order, the order the user sees in the layer list, so ``style_blend_weights`` and
the indices in ``label_styles`` mean the same as they do on the command line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from magicgui.widgets import ComboBox, LineEdit

from .. import _layers
from .controls import LayerSelect, Section

if TYPE_CHECKING:
    import napari
    from napari.layers import Image, Labels

LIST_ROWS = 4
"""Rows the additional-styles list shows before it scrolls (the dock is tall already)."""


@dataclass(frozen=True)
class StyleInputs:
    """What the engine reads for a run with a style, and the layers the record names."""

    styles: Any = None  # one array, or a list for several styles
    labels: Any = None
    sources: dict[str, Any] = field(default_factory=dict)


class StylesSection(Section):
    """``styles``, ``style_blend_weights``, ``labels``, ``label_styles``; their choices
    follow the viewer's layers."""

    def applies(self, name: str) -> bool:
        """Every control here is for the methods that read a style (not fast)."""
        return self.method != "fast" and super().applies(name)

    def __init__(self, viewer: napari.Viewer) -> None:
        from napari.layers import Image, Labels

        self._viewer = viewer
        self.styles = LayerSelect(
            name="styles", label="more styles",
            choices=lambda _: [layer for layer in viewer.layers if isinstance(layer, Image)],
            tooltip="Image layers blended with the style (none selected: the style alone).",
        )  # fmt: skip
        rows = self.styles.native.fontMetrics().height() * (LIST_ROWS + 1)
        self.styles.native.setMaximumHeight(rows)
        self.style_blend_weights = LineEdit(name="style_blend_weights", value="")
        self.style_blend_weights.label = "blend weights"
        self.labels_picker = ComboBox(
            name="labels",
            choices=lambda _: [layer for layer in viewer.layers if isinstance(layer, Labels)],
            nullable=True, value=None,
            tooltip="A Labels layer the size of the content plane: a style per region "
            "(----- = off).",
        )  # fmt: skip
        self.label_styles = LineEdit(name="label_styles", value="")
        self.label_styles.label = "label styles"
        super().__init__(
            "styles",
            [self.styles, self.style_blend_weights, self.labels_picker, self.label_styles],
        )

    def options(self) -> dict[str, Any]:
        return super().options() if self.method != "fast" else {}

    def inputs(
        self, content: Image, style: Image, selection: _layers.Selection, scheduler: str
    ) -> StyleInputs:
        """The style plane(s) and label plane for a run with a style (gatys, wct, adain);
        ``ValueError`` if they
        cannot be (``scheduler``: the Dask scheduler of a whole-stack run, or '').

        Each style is the plane the viewer shows, copied (as the style always was);
        the labels are the plane of the Labels layer that matches the content's.
        """
        viewer = self._viewer
        chosen = self.styles.value
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
        labels_layer: Labels | None = self.labels_picker.value
        labels = None
        if labels_layer is not None:
            if scheduler:
                raise ValueError(
                    "labels (styles per region) run in napari's process; clear the Dask scheduler"
                )
            labels = _label_plane(labels_layer, content, selection, viewer)
            sources["labels"] = labels_layer.name
        return StyleInputs(styles if extra else styles[0], labels, sources)


def _label_plane(
    layer: Labels, content: Image, selection: _layers.Selection, viewer: napari.Viewer
) -> Any:
    """One label plane: the engine applies it to every plane of a whole-stack run."""
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

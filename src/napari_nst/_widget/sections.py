"""The dock's option sections: *Look*, *Loss weights*, *Stacks & cluster*, *Engine*.

Each is a :class:`~.controls.Section` whose controls are named after options of
the option table; what a section does beyond the generic ``options()`` /
``set_options()`` is here: a look that follows the content (gray → luminance), the
weights a preset asks for, a VGG19 file in either layout, a device this machine
may lack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    FileEdit,
    FloatSpinBox,
    LineEdit,
    PushButton,
    SpinBox,
)

from .controls import Section, weight_box

if TYPE_CHECKING:
    from napari.layers import Image

STACK_MODES = [("current slice", "slice"), ("whole stack", "all")]
VGG_SOURCES = [
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
"""VGG19 choices that take the file box, and the prefix each gives the file."""


class LookSection(Section):
    """``style_scale``, ``preserve_color``, ``early_stop_tol``, ``pyramid``,
    ``luminance_only``, ``output_range``, ``output_size``."""

    def __init__(self) -> None:
        from ..core.options import Options

        defaults = Options()
        self.style_scale = FloatSpinBox(
            name="style_scale", label="style scale", value=1.0, min=0.1, max=8.0, step=0.05
        )
        self.preserve_color = ComboBox(
            name="preserve_color", label="preserve colour",
            choices=["none", "histogram", "luminance"], value="none",
        )  # fmt: skip
        self.early_stop_tol = FloatSpinBox(
            name="early_stop_tol", label="early stop", value=0.0, min=0.0, max=0.1, step=1e-4
        )
        self.pyramid = ComboBox(
            name="pyramid", label="coarse to fine", choices=["auto", "on", "off"], value="auto"
        )
        self.luminance_only = CheckBox(name="luminance_only", text="luminance only", value=False)
        self.output_range = ComboBox(
            name="output_range", label="output range", choices=["original", "unit"],
            value=defaults.output_range,
        )  # fmt: skip
        self.output_size = ComboBox(
            name="output_size", label="result size",
            choices=[("as computed", "working"), ("content's size", "content")],
            value="working",  # in napari the result is laid over the content at any size
        )  # fmt: skip
        super().__init__("look", [
            self.style_scale, self.preserve_color, self.early_stop_tol, self.pyramid,
            self.luminance_only, self.output_range, self.output_size,
        ])  # fmt: skip

    def options(self) -> dict[str, Any]:
        options = super().options()
        if self.method != "fast" and self.preserve_color.value == "luminance":
            options["luminance_only"] = True
        return options

    def set_options(self, values: dict[str, Any]) -> list[str]:
        luminance = values["luminance_only"]
        super().set_options(values | {"luminance_only": self.luminance_only.value})
        if luminance is not None:  # None: the content decides
            self.luminance_only.value = luminance
        return []

    def follow_content(self, layer: Image | None) -> None:
        """Gray content defaults to a gray (luminance-only) result, colour to colour."""
        self.luminance_only.value = layer is not None and not layer.rgb


class LossSection(Section):
    """``content_weight``, ``style_weight``, ``tv_weight``."""

    def __init__(self) -> None:
        from ..core.options import Options

        defaults = Options()
        self.content_weight = weight_box("content_weight", defaults.content_weight, step=0.01)
        self.style_weight = weight_box("style_weight", defaults.style_weight, step=0.1)
        self.tv_weight = weight_box("tv_weight", defaults.tv_weight, step=0.01)
        super().__init__("loss", [self.content_weight, self.style_weight, self.tv_weight])

    def weights(self) -> dict[str, float]:
        return {name: float(w.value) for name, w in self.option_controls().items()}

    def set_options(self, values: dict[str, Any]) -> list[str]:
        """The weights as given (a strength is the style weight it stands for)."""
        from ..core.options import style_weight_for

        if values.get("style_strength") is not None:
            values = values | {"style_weight": style_weight_for(values["style_strength"])}
        return super().set_options(values)


class StacksSection(Section):
    """``stack``, ``slice_weight`` and ``dask_scheduler`` (the last two for whole stacks)."""

    def __init__(self) -> None:
        from ..core.options import Options

        defaults = Options()
        self.stack = ComboBox(name="stack", choices=STACK_MODES, value=defaults.stack)
        self.slice_weight = weight_box("slice_weight", defaults.slice_weight, step=0.1)
        self.slice_weight.label = "slice weight"
        self.dask_scheduler = LineEdit(name="dask_scheduler")
        self.dask_scheduler.label = "Dask scheduler"
        self.dask_scheduler.tooltip = (
            "Blank: this process. A scheduler address (tcp://host:8786) or local[:N] (N local "
            "worker processes): one task per plane, planes independent (no slice weight)."
        )
        super().__init__("stacks", [self.stack, self.slice_weight, self.dask_scheduler])
        self.stack.changed.connect(self.update_visibility)
        self.update_visibility()

    @property
    def whole_stack(self) -> bool:
        return self.stack.value == "all"

    @property
    def scheduler(self) -> str:
        """The Dask scheduler a whole-stack run goes to ('' = this process)."""
        return self.dask_scheduler.value.strip() if self.whole_stack else ""

    def applies(self, name: str) -> bool:
        if name in ("slice_weight", "dask_scheduler") and not self.whole_stack:
            return False
        return super().applies(name)


class EngineSection(Section):
    """``device``, ``vgg`` (with ``vgg_file``), ``seed``, ``levels`` and ``decoders`` (wct,
    adain), *run on* (this computer or a napari-nst server), and *Train a model…*."""

    gatys_only = ("vgg_file",)

    def __init__(self) -> None:
        from ..core.devices import available_devices
        from ..core.options import Options

        defaults = Options()
        self.device = ComboBox(name="device", choices=available_devices(), value="auto")
        self.vgg = ComboBox(
            name="vgg", label="VGG19", choices=VGG_SOURCES,
            value="bundled" if defaults.vgg == "auto" else defaults.vgg,
        )  # fmt: skip
        self.vgg_file = FileEdit(name="vgg_file", label="VGG19 file", filter="*.pth *.pt")
        self.vgg_file.tooltip = "A local VGG19 state dict, in the layout chosen above."
        self.seed = SpinBox(name="seed", value=defaults.seed, min=0, max=2**31 - 1)
        self.levels = LineEdit(name="levels", value="")
        self.levels.native.setPlaceholderText("auto")
        self.decoders = LineEdit(name="decoders", value="")
        self.decoders.native.setPlaceholderText("shipped")
        self.server = LineEdit(name="server", label="run on", value="")
        self.server.native.setPlaceholderText("this computer")
        self.server.tooltip = (
            "Blank: this computer. The address of a napari-nst server (napari-nst serve; "
            "http://127.0.0.1:8765) runs there, with previews and Cancel; a token, if the "
            "server needs one, from NAPARI_NST_TOKEN."
        )
        self.train = PushButton(name="train", text="Train a fast model…")
        self.train.tooltip = (
            "Open the Train Fast Style dock: a model for one style, applied in one pass, or "
            "a decoder for wct and adain (its folder goes in decoders)."
        )
        controls = [
            self.device, self.vgg, self.vgg_file, self.seed, self.levels, self.decoders,
            self.server, self.train,
        ]  # fmt: skip
        super().__init__("engine", controls)
        self.vgg.changed.connect(self.update_visibility)
        self.update_visibility()

    @property
    def server_url(self) -> str:
        """The server runs go to, or '' for this computer."""
        return str(self.server.value).strip()

    def applies(self, name: str) -> bool:
        if name == "vgg_file" and self.vgg.value not in FILE_SOURCES:
            return False
        return super().applies(name)

    def options(self) -> dict[str, Any]:
        vgg = self.vgg.value
        if vgg in FILE_SOURCES:
            vgg = FILE_SOURCES[vgg] + str(self.vgg_file.value)
        return {
            "device": self.device.value, "vgg": vgg, "seed": self.seed.value,
            "levels": str(self.levels.value).strip() or None,
            "decoders": str(self.decoders.value).strip() or None,
        }  # fmt: skip

    def set_options(self, values: dict[str, Any]) -> list[str]:
        self.seed.value = values["seed"]
        levels = values["levels"]
        self.levels.value = ",".join(levels) if isinstance(levels, list | tuple) else levels or ""
        self.decoders.value = values["decoders"] or ""
        vgg = "bundled" if values["vgg"] == "auto" else values["vgg"]
        if vgg in self.vgg.choices and vgg not in FILE_SOURCES:
            self.vgg.value = vgg
        else:
            prefix = "caffe:" if vgg.startswith("caffe:") else ""
            self.vgg.value = "caffe file" if prefix else "file"
            self.vgg_file.value = vgg.removeprefix(prefix)
        device = values["device"]
        for candidate in (device, f"{device}:0"):
            if candidate in self.device.choices:
                self.device.value = candidate
                return []
        return [f"device={device!r} (not available here)"]

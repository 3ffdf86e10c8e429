"""The *Train Fast Style* dock widget: teach a fast model one style, then apply it; or
train a decoder for universal style transfer (wct, adain) at one level.

Training images come from an Image layer (its planes: the slices of a stack) or
a folder. The run is the core's training generator in a napari ``thread_worker``;
Cancel saves the current weights, so a stopped run still leaves a usable file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import (
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    PushButton,
    RadioButtons,
    SpinBox,
    create_widget,
)
from napari.utils import progress
from napari.utils.notifications import show_error, show_info

from ._torch_in_gui import prepare_torch
from ._wording import for_gui
from ._workers import start_worker

if TYPE_CHECKING:
    import napari

    from .core import Step


FAST = "fast model"
DECODER = "decoder"


class TrainWidget(Container):
    """Style layer + training images → a model file the Style Transfer widget can use;
    or training images → a decoder (its folder is the dock's ``decoders``)."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(scrollable=False)
        prepare_torch()
        from .core.devices import available_devices
        from .core.options import LEVELS
        from .core.training import DecoderOptions, TrainOptions

        defaults = TrainOptions()
        self._defaults = {FAST: defaults, DECODER: DecoderOptions()}
        self._viewer = viewer
        self.kind = RadioButtons(
            name="kind", label="train", choices=[FAST, DECODER], value=FAST,
            orientation="horizontal",
        )  # fmt: skip
        self.kind.tooltip = (
            "a fast model: one style, applied in one pass (method fast); a decoder: inverts "
            "the bundled VGG19 at one level, for any style (methods wct and adain)"
        )
        self.level = ComboBox(name="level", choices=list(LEVELS), value="relu3_1", visible=False)
        self.style = create_widget(annotation="napari.layers.Image", name="style")
        self.source = RadioButtons(
            name="source", choices=["layer", "folder"], value="layer", orientation="horizontal"
        )
        self.images = create_widget(annotation="napari.layers.Image", name="images")
        self.images.tooltip = "Every plane of this layer is a training image (e.g. a stack)."
        self.folder = FileEdit(name="folder", mode="d", visible=False)
        self.output = FileEdit(name="output", mode="w", filter="*.pth *.safetensors")
        self.steps = SpinBox(name="steps", value=defaults.steps, min=1, max=1_000_000, step=100)
        self.image_size = SpinBox(
            name="image_size", value=defaults.image_size, min=32, max=4096, step=32
        )
        self.batch_size = SpinBox(name="batch_size", value=defaults.batch_size, min=1, max=64)
        self.content_weight = FloatSpinBox(
            name="content_weight", value=defaults.content_weight, min=0, max=1e15
        )
        self.style_weight = FloatSpinBox(
            name="style_weight", value=defaults.style_weight, min=0, max=1e15
        )
        self.checkpoint_every = SpinBox(
            name="checkpoint_every", value=defaults.checkpoint_every, min=1, max=1_000_000
        )
        self.vgg = ComboBox(
            name="vgg", label="VGG19", choices=["bundled", "torchvision", "caffe", "random"],
            value="bundled",
        )  # fmt: skip
        self.device = ComboBox(name="device", choices=available_devices(), value="auto")
        self.run = PushButton(name="run", text="Train")
        self.cancel = PushButton(name="cancel", text="Cancel (keeps the model)", enabled=False)
        self.status = Label(name="status", value="")
        self.extend([
            self.kind, self.level, self.style, self.source, self.images, self.folder,
            self.output, self.steps,
            self.image_size, self.batch_size, self.content_weight, self.style_weight,
            self.checkpoint_every, self.vgg, self.device, self.run, self.cancel, self.status,
        ])  # fmt: skip
        self.source.changed.connect(self._on_source_changed)
        self.kind.changed.connect(self._on_kind_changed)
        self.run.changed.connect(self._on_run)
        self.cancel.changed.connect(self._on_cancel)
        self._worker: Any = None
        self._progress: progress | None = None
        self.saved: str | None = None
        self.history: list[dict[str, float]] = []

    def options(self) -> dict[str, Any]:
        if self.kind.value == DECODER:
            return {
                "level": self.level.value,
                "steps": self.steps.value,
                "image_size": self.image_size.value,
                "batch_size": self.batch_size.value,
                "checkpoint_every": self.checkpoint_every.value,
                "device": self.device.value,
            }
        return {
            "steps": self.steps.value,
            "image_size": self.image_size.value,
            "batch_size": self.batch_size.value,
            "content_weight": self.content_weight.value,
            "style_weight": self.style_weight.value,
            "checkpoint_every": self.checkpoint_every.value,
            "vgg": self.vgg.value,
            "device": self.device.value,
        }

    def _on_kind_changed(self, kind: str) -> None:
        """Show what this kind of training reads; its own defaults for the shared boxes."""
        decoder = kind == DECODER
        for control in (self.style, self.content_weight, self.style_weight, self.vgg):
            control.visible = not decoder
        self.level.visible = decoder
        self.output.filter = "*.safetensors" if decoder else "*.pth *.safetensors"
        defaults = self._defaults[kind]
        for name in ("steps", "image_size", "batch_size", "checkpoint_every"):
            getattr(self, name).value = getattr(defaults, name)

    def _on_source_changed(self, value: str) -> None:
        self.images.visible = value == "layer"
        self.folder.visible = value == "folder"

    def _on_run(self) -> None:
        if self._worker is not None:
            return
        try:
            steps = self._prepare()
        except ValueError as exc:
            show_error(f"Training: {for_gui(str(exc))}")
            return
        self.saved, self.history = None, []
        what = f"decoder {self.level.value}" if self.kind.value == DECODER else "fast style"
        self._progress = progress(total=self.steps.value, desc=f"Training {what}")
        self.run.enabled, self.cancel.enabled = False, True

        def train() -> Any:  # a generator function, so napari makes a GeneratorWorker
            return (yield from steps)

        self._worker = start_worker(
            train,
            yielded=self._on_step,
            errored=lambda exc: show_error(f"Training failed: {for_gui(str(exc))}"),
            finished=self._on_finished,
        )

    def _prepare(self) -> Any:
        from .core.training import iter_train, iter_train_decoder

        decoder = self.kind.value == DECODER
        style = self.style.value
        if style is None and not decoder:
            raise ValueError("choose a style image layer")
        output = str(self.output.value)
        if not output or output == ".":
            kinds = ".safetensors" if decoder else ".pth or .safetensors"
            raise ValueError(f"choose where to save the {self.kind.value} ({kinds})")
        if self.source.value == "layer":
            layer = self.images.value
            if layer is None:
                raise ValueError("choose a layer of training images")
            data = layer.data[0] if layer.multiscale else layer.data
            images = np.array(data, copy=True)  # a snapshot: the user may keep editing
            if images.ndim == (3 if layer.rgb else 2):
                images = images[None]
        else:
            images = str(self.folder.value)
        if decoder:
            return iter_train_decoder(images, output, **self.options())
        style_data = np.array(style.data[0] if style.multiscale else style.data, copy=True)
        return iter_train(style_data, images, output, **self.options())

    def _on_cancel(self) -> None:
        if self._worker is not None:
            from .core import STOP

            self.status.value = "saving and stopping…"
            self.cancel.enabled = False
            self._worker.send(STOP)

    def _on_step(self, step: Step) -> None:
        self.history.append(step.losses)
        self.saved = step.saved or self.saved
        psnr = f"  PSNR {step.losses['psnr']:.1f} dB" if "psnr" in step.losses else ""
        self.status.value = (
            f"step {step.iteration}/{step.total}  loss {step.losses['total']:.4g}{psnr}"
        )
        if self._progress is not None:  # last: updating it may process queued signals
            self._progress.update(step.iteration - self._progress.n)

    def _on_finished(self) -> None:
        if self._progress is not None:
            self._progress.close()
        if self.saved:
            what = "Decoder" if self.kind.value == DECODER else "Fast-style model"
            show_info(f"{what} saved to {self.saved}")
            self.status.value = f"saved {self.saved}"
        self._worker = self._progress = None
        self.run.enabled, self.cancel.enabled = True, False

    @property
    def running(self) -> bool:
        return self._worker is not None

"""VGG19 as a multi-layer feature encoder: layer names, truncation, pooling.

The network is run once per optimisation step and every loss reads the layer it
asked for (pystiche's "encode once" idea); layers past the deepest one in use are
never built, which is where most of the speed of a style-transfer step comes from.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

# Convolutions per block and their widths: VGG19 is configuration "E" of Simonyan & Zisserman.
_BLOCKS = ((2, 64), (2, 128), (4, 256), (4, 512), (4, 512))

DEFAULT_CONTENT_LAYERS = ("relu4_2",)
DEFAULT_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def _layer_table() -> tuple[list[str], list[tuple[int, int]]]:
    """Names in torchvision's ``features`` order, and (in, out) channels per conv."""
    names: list[str] = []
    convs: list[tuple[int, int]] = []
    channels = 3
    for block, (count, width) in enumerate(_BLOCKS, start=1):
        for i in range(1, count + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
            convs.append((channels, width))
            channels = width
        names.append(f"pool{block}")
    return names, convs


LAYER_NAMES, CONV_CHANNELS = _layer_table()
LAYER_INDEX = {name: index for index, name in enumerate(LAYER_NAMES)}
CONV_INDICES = [LAYER_INDEX[name] for name in LAYER_NAMES if name.startswith("conv")]
"""Positions of the 16 convolutions inside torchvision's ``vgg19().features``."""

_KERAS = re.compile(r"^block(\d)_(conv(\d)|pool)$")


def canonical_layer_name(name: str) -> str:
    """Map classic (``relu4_2``) and Keras (``block4_conv2``) names to the classic form.

    Keras' ``blockN_convM`` layers include their ReLU activation, so they are the
    classic ``reluN_M`` outputs, not the pre-activation ``convN_M`` ones.
    """
    if not isinstance(name, str):
        raise ValueError(f"layer names must be strings; got {name!r}")
    key = name.strip().lower()
    match = _KERAS.match(key)
    if match:
        block, conv, index = match.groups()
        key = f"relu{block}_{index}" if conv != "pool" else f"pool{block}"
    if key not in LAYER_INDEX:
        raise ValueError(
            f"unknown VGG19 layer {name!r}; use names like conv4_2, relu4_2, pool4 "
            f"or Keras' block4_conv2 (valid: {', '.join(LAYER_NAMES)})"
        )
    return key


@dataclass(frozen=True)
class Preprocess:
    """How the weights expect their input, starting from RGB in [0, 1].

    torchvision normalises with ImageNet mean/std; the Caffe VGG19 that
    neural-style uses wants BGR in 0–255 with the mean pixel subtracted.
    """

    mean: tuple[float, float, float]
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    scale: float = 1.0
    bgr: bool = False


TORCHVISION_PREPROCESS = Preprocess(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
CAFFE_PREPROCESS = Preprocess(mean=(103.939, 116.779, 123.68), scale=255.0, bgr=True)


class _Normalize(nn.Module):
    def __init__(self, preprocess: Preprocess) -> None:
        super().__init__()
        self.bgr = preprocess.bgr
        scale = torch.tensor(preprocess.scale)
        self.register_buffer("mul", scale / torch.tensor(preprocess.std).view(1, 3, 1, 1))
        self.register_buffer("sub", torch.tensor(preprocess.mean).view(1, 3, 1, 1) / scale)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        x = rgb.flip(1) if self.bgr else rgb
        return (x - self.sub) * self.mul


class VGGFeatures(nn.Module):
    """VGG19 ``features`` truncated after the deepest requested layer.

    ``forward`` returns ``{layer name: activation}`` for the requested layers only.
    ReLUs run in place except right after a requested ``conv`` output, which the
    in-place ReLU would otherwise overwrite.
    """

    def __init__(
        self,
        conv_weights: dict[int, tuple[torch.Tensor, torch.Tensor]],
        layers: Iterable[str],
        preprocess: Preprocess,
        pooling: str = "max",
        padding: str = "zeros",
    ) -> None:
        super().__init__()
        self.layers = tuple(dict.fromkeys(canonical_layer_name(n) for n in layers))
        if not self.layers:
            raise ValueError("no VGG19 layers requested")
        self.normalize = _Normalize(preprocess)
        deepest = max(LAYER_INDEX[name] for name in self.layers)
        self._taps = {LAYER_INDEX[name]: name for name in self.layers}

        modules: list[nn.Module] = []
        conv_iter = iter(CONV_CHANNELS)
        for index, name in enumerate(LAYER_NAMES[: deepest + 1]):
            if name.startswith("conv"):
                in_ch, out_ch = next(conv_iter)
                # ``padding`` (reflect, replicate) on the first conv keeps the image's
                # border from reading as an edge that the style then paints over.
                mode = padding if index == 0 else "zeros"
                conv = nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1, padding_mode=mode)
                weight, bias = conv_weights[index]
                with torch.no_grad():
                    conv.weight.copy_(weight)
                    conv.bias.copy_(bias)
                modules.append(conv)
            elif name.startswith("relu"):
                modules.append(nn.ReLU(inplace=index - 1 not in self._taps))
            elif pooling == "avg":
                modules.append(nn.AvgPool2d(kernel_size=2, stride=2))
            else:
                modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
        self.body = nn.Sequential(*modules)
        self.requires_grad_(False)
        self.eval()

    def forward(self, rgb: torch.Tensor) -> dict[str, torch.Tensor]:
        if rgb.shape[1] == 1:  # gray or luminance: the network sees equal R, G and B
            rgb = rgb.expand(-1, 3, -1, -1)
        x = self.normalize(rgb).contiguous(memory_format=torch.channels_last)
        out: dict[str, torch.Tensor] = {}
        for index, module in enumerate(self.body):
            x = module(x)
            if index in self._taps:
                out[self._taps[index]] = x
        return out

    @property
    def depth(self) -> int:
        """Number of VGG modules actually built (truncation is observable in tests)."""
        return len(self.body)

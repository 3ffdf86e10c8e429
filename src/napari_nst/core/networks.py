"""The feed-forward networks napari-nst runs, each key for key as its published files
have it, and the reading of those files for the universal methods.

**Johnson et al.'s style network** (:class:`TransformerNet`, the fast method). Module
names match pytorch/examples' ``fast_neural_style/neural_style/transformer_net.py``,
so the published checkpoints (candy, mosaic, udnie, rain_princess) load without
renaming and models trained here load in ``neural_style.py eval`` unchanged.
Instance normalisation is where tiling would show: each tile would normalise by its
own statistics and the seams would be visible. :class:`Norm` can therefore record
the statistics of a whole-image pass and then apply them, frozen, to every tile.

**The universal methods' encoders and decoders** (WCT, AdaIN: :mod:`.universal`):
``nn.Sequential`` in the layout of pytorch-AdaIN and of the PyTorch ports of Li et
al.'s Torch models (a 1×1 input convolution, reflection padding, ``ceil_mode``
pooling, nearest upsampling), so their files load key for key: pytorch-AdaIN's
``decoder.pth`` with its ``vgg_normalised.pth``, or the ports' ``vgg_normalised_convN_1.pth``
with ``feature_invertor_convN_1.pth``. The decoders napari-nst ships (``decoders/``,
trained by :func:`.training.iter_train_decoder`) invert the bundled VGG19, whose
preprocessing becomes that 1×1 convolution. Every file is read with
``weights_only=True`` and checked key by key and shape by shape.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .vgg import (
    CONV_INDICES,
    VGG19,
    Preprocess,
    UnsafeOrCorruptFile,
    file_sha256,
    load_bundled,
    read_state_dict,
)

STRIDE = 4
"""Two stride-2 convolutions: inputs are padded to a multiple of this and cropped back."""

RECEPTIVE_MARGIN = 64
"""Pixels at a tile's edge that its padding can disturb (9×9 + two 3×3 at 1/2 + ten
3×3 at 1/4 + two 3×3 at 1/2 + 9×9 ≈ 60 px), rounded up to a multiple of STRIDE."""

MARGIN = RECEPTIVE_MARGIN
"""A tile's outer pixels that fade to nothing where tiles overlap (see ``fast.tile_fade``)."""
OVERLAP = 3 * RECEPTIVE_MARGIN
"""How far neighbouring tiles overlap: the margin, then a linear cross-fade."""
MIN_TILE = 2 * OVERLAP
"""The smallest tile (the ``tile`` option's lower bound)."""


class Norm(nn.InstanceNorm2d):
    """``InstanceNorm2d(affine=True)`` that can record or reuse whole-image statistics."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels, affine=True)
        self.frozen: tuple[torch.Tensor, torch.Tensor] | None = None
        self.recording = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Written out rather than F.instance_norm, which goes through batch_norm and
        # copies the activations twice: statistics in one pass, then one fused
        # multiply-add. Same numbers (biased variance, eps inside the root).
        if self.frozen is None or self.recording:
            var, mean = _channel_statistics(x)
            if self.recording:  # the batch's average statistics, for later tiles
                self.frozen = (mean.float().mean(0).flatten(), var.float().mean(0).flatten())
        else:
            mean, var = (t.to(x.dtype)[None, :, None, None] for t in self.frozen)
        scale = self.weight[None, :, None, None] * torch.rsqrt(var + self.eps)
        shift = self.bias[None, :, None, None] - mean * scale
        return torch.addcmul(shift, x, scale)


def _channel_statistics(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample, per-channel biased variance and mean, shaped (N, C, 1, 1).

    In channels-last memory (N, H·W, C) is a free view and the reduction runs along
    contiguous rows; reducing the (N, C, H, W) view over its strided last axes is
    several times slower on CPU.
    """
    n, c, h, w = x.shape
    if x.is_contiguous(memory_format=torch.channels_last):
        var, mean = torch.var_mean(x.permute(0, 2, 3, 1).reshape(n, h * w, c), dim=1, correction=0)
    else:
        var, mean = torch.var_mean(x.reshape(n, c, h * w), dim=2, correction=0)
    return var.view(n, c, 1, 1), mean.view(n, c, 1, 1)


class ConvLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int):
        super().__init__()
        self.reflection_pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv2d = nn.Conv2d(in_channels, out_channels, kernel_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2d(self.reflection_pad(x))


class UpsampleConvLayer(ConvLayer):
    """Nearest-neighbour upsampling then a convolution (no checkerboard artefacts)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.interpolate(x, mode="nearest", scale_factor=2))


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, kernel_size=3, stride=1)
        self.in1 = Norm(channels)
        self.conv2 = ConvLayer(channels, channels, kernel_size=3, stride=1)
        self.in2 = Norm(channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.in1(self.conv1(x)))
        return self.in2(self.conv2(out)) + x


class TransformerNet(nn.Module):
    """RGB in 0–255 → RGB in 0–255 (unclamped, as trained), same size for multiples of 4."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = ConvLayer(3, 32, kernel_size=9, stride=1)
        self.in1 = Norm(32)
        self.conv2 = ConvLayer(32, 64, kernel_size=3, stride=2)
        self.in2 = Norm(64)
        self.conv3 = ConvLayer(64, 128, kernel_size=3, stride=2)
        self.in3 = Norm(128)
        self.res1 = ResidualBlock(128)
        self.res2 = ResidualBlock(128)
        self.res3 = ResidualBlock(128)
        self.res4 = ResidualBlock(128)
        self.res5 = ResidualBlock(128)
        self.deconv1 = UpsampleConvLayer(128, 64, kernel_size=3, stride=1)
        self.in4 = Norm(64)
        self.deconv2 = UpsampleConvLayer(64, 32, kernel_size=3, stride=1)
        self.in5 = Norm(32)
        self.deconv3 = ConvLayer(32, 3, kernel_size=9, stride=1)
        self.relu = nn.ReLU(inplace=True)  # on fresh norm outputs: saves a copy per layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.in1(self.conv1(x)))
        y = self.relu(self.in2(self.conv2(y)))
        y = self.relu(self.in3(self.conv3(y)))
        y = self.res5(self.res4(self.res3(self.res2(self.res1(y)))))
        y = self.relu(self.in4(self.deconv1(y)))
        y = self.relu(self.in5(self.deconv2(y)))
        return self.deconv3(y)

    def norms(self) -> list[Norm]:
        return [module for module in self.modules() if isinstance(module, Norm)]

    @contextmanager
    def frozen_statistics(self, reference: torch.Tensor) -> Iterator[None]:
        """Normalise every input by the statistics of ``reference`` (a whole image).

        Inside the block, tiles of the image are normalised exactly as the whole
        image would be (when ``reference`` is the whole image at full size) or
        nearly so (a downscaled copy), and identically to each other.
        """
        norms = self.norms()
        for norm in norms:
            norm.recording = True
        try:
            with torch.no_grad():
                self(reference)
        finally:
            for norm in norms:
                norm.recording = False
        try:
            yield
        finally:
            for norm in norms:
                norm.frozen = None


def pad_to_stride(image: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad (N, C, H, W) on the bottom/right to multiples of STRIDE."""
    height, width = image.shape[-2:]
    extra = (-height % STRIDE, -width % STRIDE)
    if extra == (0, 0):
        return image, (height, width)
    mode = "reflect" if min(height, width) > max(extra) else "replicate"
    return F.pad(image, (0, extra[1], 0, extra[0]), mode=mode), (height, width)


# -- the universal methods' encoders and decoders ------------------------------------

LEVELS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
"""The levels of universal style transfer (VGG19's first ReLU of each block), fine to
coarse."""
_BLOCKS = ((2, 64), (2, 128), (4, 256), (4, 512), (4, 512))
"""VGG19's blocks: (convolutions, channels)."""
SHIPPED = "shipped"
"""The ``decoders`` value for the decoders installed with napari-nst."""
SHIPPED_FOLDER = "decoders"


def _convs(level: str, whole: bool = False) -> list[tuple[int, int] | None]:
    """VGG19's 3×3 convolutions up to ``level`` as (in, out) channels, None for a pool;
    ``whole``: every convolution of the blocks reached (pytorch-AdaIN's full file)."""
    depth = LEVELS.index(level) + 1
    layers: list[tuple[int, int] | None] = []
    channels = 3
    for block, (count, width) in enumerate(_BLOCKS[:depth]):
        if block:
            layers.append(None)
        for _ in range(count if whole or block < depth - 1 else 1):
            layers.append((channels, width))
            channels = width
    return layers


def encoder_layers(level: str, whole: bool = False) -> nn.Sequential:
    """The ``vgg_normalised`` layout up to ``level``: 1×1 input convolution, then
    reflection-padded 3×3 convolutions with ReLUs, ``ceil_mode`` max pooling."""
    layers: list[nn.Module] = [nn.Conv2d(3, 3, 1)]
    for conv in _convs(level, whole):
        if conv is None:
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
        else:
            layers += [nn.ReflectionPad2d(1), nn.Conv2d(*conv, 3), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def decoder_layers(level: str) -> nn.Sequential:
    """The encoder mirrored (``feature_invertor_convN_1``; pytorch-AdaIN's ``decoder`` at
    relu4_1): nearest upsampling for each pool, no ReLU after the last convolution."""
    layers: list[nn.Module] = []
    for conv in reversed(_convs(level)):
        if conv is None:
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
        else:
            inverted = nn.Conv2d(conv[1], conv[0], 3)
            layers += [nn.ReflectionPad2d(1), inverted, nn.ReLU(inplace=True)]
    return nn.Sequential(*layers[:-1])


def preprocess_conv(preprocess: Preprocess) -> tuple[torch.Tensor, torch.Tensor]:
    """A VGG19's preprocessing (RGB in [0, 1] → its input) as a 1×1 convolution."""
    mul = torch.tensor(preprocess.scale) / torch.tensor(preprocess.std)
    sub = torch.tensor(preprocess.mean) / preprocess.scale
    weight = torch.zeros(3, 3, 1, 1)
    for out in range(3):
        weight[out, 2 - out if preprocess.bgr else out] = mul[out]
    return weight, -(sub * mul)


def vgg_encoder(vgg: VGG19, level: str) -> nn.Sequential:
    """``encoder_layers(level)`` with a VGG19's weights (the bundled one for napari-nst's
    own decoders)."""
    encoder = encoder_layers(level)
    convs = [m for m in encoder if isinstance(m, nn.Conv2d)]
    state = dict(zip(("weight", "bias"), preprocess_conv(vgg.preprocess), strict=True))
    convs[0].load_state_dict(state)
    for conv, index in zip(convs[1:], CONV_INDICES, strict=False):
        weight, bias = vgg.convs[index]
        conv.load_state_dict({"weight": weight, "bias": bias})
    return encoder.eval().requires_grad_(False)


# -- reading decoders --------------------------------------------------------------


class DecoderError(ValueError):
    """Decoder files that cannot be used, with what was found and what was expected."""


@dataclass
class Pair:
    """One level's encoder and the decoder that inverts it, and their files."""

    level: str
    encoder: nn.Sequential
    decoder: nn.Sequential
    files: dict[str, str] = field(default_factory=dict)


@dataclass
class Decoders:
    """The levels a set of decoder files offers, and where they came from."""

    source: str
    pairs: dict[str, Pair]

    @property
    def levels(self) -> tuple[str, ...]:
        return tuple(level for level in LEVELS if level in self.pairs)

    def describe(self) -> dict[str, Any]:
        files = {
            level: {
                role: {"path": path, "sha256": file_sha256(path)} for role, path in p.files.items()
            }
            for level, p in self.pairs.items()
        }
        return {"source": self.source, "levels": list(self.levels), "files": files}


def shipped_folder() -> Path:
    return Path(str(resources.files("napari_nst") / SHIPPED_FOLDER))


def load_decoders(spec: str | None = None) -> Decoders:
    """Decoders from the ``decoders`` option: ``shipped`` (default), a folder or a file.

    A folder holds pytorch-AdaIN's ``decoder.pth`` + ``vgg_normalised.pth`` (relu4_1),
    the WCT ports' ``feature_invertor_convN_1.pth`` + ``vgg_normalised_convN_1.pth``, or
    ``reluN_1.safetensors`` files written by ``napari-nst train-decoder`` (which read the
    bundled VGG19 as their encoder); a file is one of those.
    """
    spec = (spec or SHIPPED).strip()
    path = shipped_folder() if spec == SHIPPED else Path(spec).expanduser()
    if path.is_file():
        return _from_file(path)
    if not path.is_dir():
        raise DecoderError(
            f"decoders not found: {path}. Use 'shipped', a folder of decoders or a decoder file"
        )
    pairs: dict[str, Pair] = {}
    if (path / "decoder.pth").is_file():
        pairs |= _from_file(path / "decoder.pth").pairs
    for level in LEVELS:
        conv = level.replace("relu", "conv")
        port = path / f"feature_invertor_{conv}.pth"
        if port.is_file():
            pairs[level] = _port_pair(level, port, path / f"vgg_normalised_{conv}.pth")
        ours = path / f"{level}.safetensors"
        if ours.is_file():
            pairs[level] = _our_pair(ours)
    if not pairs:
        raise DecoderError(
            f"no decoders in {path}: expected decoder.pth + vgg_normalised.pth "
            "(pytorch-AdaIN), feature_invertor_convN_1.pth + vgg_normalised_convN_1.pth "
            "(WCT ports) or reluN_1.safetensors (napari-nst train-decoder)"
        )
    return Decoders("shipped" if spec == SHIPPED else str(path), pairs)


def _from_file(path: Path) -> Decoders:
    if path.suffix.lower() == ".safetensors":
        pair = _our_pair(path)
    elif path.name.startswith("feature_invertor_conv"):
        level = "relu" + path.stem.removeprefix("feature_invertor_conv")
        if level not in LEVELS:
            raise DecoderError(f"{path.name}: no level {level} (use conv1_1 … conv5_1)")
        pair = _port_pair(
            level, path, path.with_name(f"vgg_normalised_{level.replace('relu', 'conv')}.pth")
        )
    else:  # pytorch-AdaIN: the decoder of relu4_1, the whole normalised VGG19 beside it
        encoder_path = path.with_name("vgg_normalised.pth")
        if not encoder_path.is_file():
            raise DecoderError(
                f"{path.name} is read as pytorch-AdaIN's decoder, whose encoder "
                f"vgg_normalised.pth must be beside it in {path.parent}"
            )
        encoder = _loaded(
            encoder_layers("relu5_1", whole=True), encoder_path, "pytorch-AdaIN vgg_normalised"
        )
        decoder = _loaded(decoder_layers("relu4_1"), path, "pytorch-AdaIN decoder (relu4_1)")
        encoder = encoder[: len(encoder_layers("relu4_1"))]
        files = {"decoder": str(path), "encoder": str(encoder_path)}
        pair = Pair("relu4_1", encoder, decoder, files)
    return Decoders(str(path), {pair.level: pair})


def _port_pair(level: str, decoder_path: Path, encoder_path: Path) -> Pair:
    if not encoder_path.is_file():
        raise DecoderError(f"{decoder_path.name} needs its encoder {encoder_path.name} beside it")
    conv = level.replace("relu", "conv")
    encoder = _loaded(encoder_layers(level), encoder_path, f"vgg_normalised_{conv}")
    decoder = _loaded(decoder_layers(level), decoder_path, f"feature_invertor_{conv}")
    return Pair(
        level, encoder, decoder, {"decoder": str(decoder_path), "encoder": str(encoder_path)}
    )


def _our_pair(path: Path) -> Pair:
    """A decoder from ``napari-nst train-decoder``: its level in the file's header, its
    encoder the bundled VGG19 (whose hash the header records)."""
    state, metadata = _state(path)
    level = metadata.get("level", "")
    if level not in LEVELS:
        raise DecoderError(
            f"{path.name} does not say which level it decodes (expected a napari-nst decoder "
            "with 'level' relu1_1 … relu5_1 in its header)"
        )
    vgg = load_bundled()
    if metadata.get("encoder_sha256", vgg.sha256) != vgg.sha256:
        raise DecoderError(
            f"{path.name} was trained on another VGG19 "
            f"(SHA-256 {metadata['encoder_sha256'][:12]}…) "
            f"than the bundled one ({vgg.sha256[:12]}…)"  # type: ignore[index]
        )
    decoder = _checked(decoder_layers(level), state, path, f"napari-nst decoder ({level})")
    return Pair(level, vgg_encoder(vgg, level), decoder, {"decoder": str(path)})


def _state(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        return read_state_dict(path)
    except UnsafeOrCorruptFile as exc:
        raise DecoderError(str(exc)) from None


def _loaded(network: nn.Sequential, path: Path, layout: str) -> nn.Sequential:
    return _checked(network, _state(path)[0], path, layout)


def _checked(
    network: nn.Sequential, state: dict[str, torch.Tensor], path: Path, layout: str
) -> nn.Sequential:
    """``network`` with ``state``'s weights: every key present, none extra, shapes equal."""
    problems = state_problems(network, state)
    if problems:
        raise DecoderError(f"{path.name} is not a {layout} file: {'; '.join(problems)}")
    network.load_state_dict({key: value.float() for key, value in state.items()})
    return network.eval().requires_grad_(False)


def state_problems(network: nn.Module, state: dict[str, Any]) -> list[str]:
    """What keeps ``state`` from loading into ``network`` key for key: the keys missing,
    those it does not have, the shapes that differ (none: it loads). For the messages
    of every network file read here (fast models, decoders)."""
    expected = network.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    shapes = [
        f"{key} {tuple(getattr(state[key], 'shape', ()))} (expected {tuple(value.shape)})"
        for key, value in expected.items()
        if key in state and tuple(getattr(state[key], "shape", ())) != tuple(value.shape)
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s) ({_few(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s) ({_few(unexpected)})")
    if shapes:
        problems.append(f"wrong shapes: {_few(shapes)}")
    return problems


def _few(items: list[str], limit: int = 3) -> str:
    more = f", … {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def available_levels(spec: str | None) -> tuple[str, ...]:
    """The levels a ``decoders`` value offers, from file names and headers alone (cheap:
    a run is validated before its worker reads any weights)."""
    spec = (spec or SHIPPED).strip()
    path = shipped_folder() if spec == SHIPPED else Path(spec).expanduser()
    if path.is_file():
        if path.suffix.lower() == ".safetensors":
            found = {_header(path).get("level", "")}
        elif path.name.startswith("feature_invertor_conv"):
            found = {"relu" + path.stem.removeprefix("feature_invertor_conv")}
        else:
            found = {"relu4_1"}
    elif path.is_dir():
        found = {"relu4_1"} if (path / "decoder.pth").is_file() else set()
        for level in LEVELS:
            conv = level.replace("relu", "conv")
            if (path / f"feature_invertor_{conv}.pth").is_file():
                found.add(level)
            if (path / f"{level}.safetensors").is_file():
                found.add(level)
    else:
        raise DecoderError(
            f"decoders not found: {path}. Use 'shipped', a folder of decoders or a decoder file"
        )
    levels = tuple(level for level in LEVELS if level in found)
    if not levels:
        raise DecoderError(f"no decoders for relu1_1 … relu5_1 in {path}")
    return levels


def _header(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            return dict(handle.metadata() or {})
    except Exception as exc:  # safetensors raises several types for a bad file
        raise DecoderError(f"could not read {path}: {exc}") from None


def run_levels(
    method: str, requested: tuple[str, ...] | None, spec: str | None
) -> tuple[str, ...]:
    """The levels a run applies, coarse to fine: those asked for (each must have a
    decoder), else every level there is a decoder for (WCT) or the deepest (AdaIN)."""
    available = available_levels(spec)
    if requested:
        missing = [level for level in requested if level not in available]
        if missing:
            raise DecoderError(
                f"no decoder for {', '.join(missing)} in {spec or SHIPPED} "
                f"(it has {', '.join(available)})"
            )
        chosen = tuple(dict.fromkeys(requested))
    else:
        chosen = available if method == "wct" else available[-1:]
    return tuple(sorted(chosen, key=LEVELS.index, reverse=True))

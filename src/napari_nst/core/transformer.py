"""Johnson et al.'s feed-forward style network, key for key as pytorch/examples has it.

Module names match ``fast_neural_style/neural_style/transformer_net.py``, so the
published checkpoints (candy, mosaic, udnie, rain_princess) load without renaming
and models trained here load in ``neural_style.py eval`` unchanged.

Instance normalisation is where tiling would show: each tile would normalise by
its own statistics and the seams would be visible. :class:`Norm` can therefore
record the statistics of a whole-image pass and then apply them, frozen, to
every tile.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

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

"""Styles per region of a label image: guided Gram matrices (Gatys et al. 2017).

Each label value picks a style (an index into the run's styles) or ``"content"``
(no style there). A region's Gram matrix is computed from the features inside it
only, weighted by the region's mask at each layer's resolution and normalised by
its area, so a style does not bleed across a boundary and a small region counts
as much per pixel as a large one. Labels not named in ``label_styles`` (label 0,
the background, included) take the run's blend of all styles.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .losses import mean_square

CONTENT = "content"
"""A region whose value in ``label_styles`` is this keeps the content (no style term)."""
BLEND = -1
"""Internal marker: the region takes the blend of all styles (labels not listed)."""


@dataclass(frozen=True)
class Regions:
    """A run's label image and what each label gets."""

    labels: np.ndarray
    label_styles: dict[int, int | str]

    @classmethod
    def check(
        cls, labels: object, label_styles: object, plane_shape: tuple[int, int], styles: int
    ) -> Regions | None:
        if labels is None:
            if label_styles:
                raise ValueError("label_styles needs labels (an integer image of the content)")
            return None
        return cls(check_labels(labels, plane_shape), parse_label_styles(label_styles, styles))

    def losses(
        self,
        style_sets: Sequence[Mapping[str, Any]],
        blended: Mapping[str, Any],
        shape: tuple[int, int],
        device: torch.device,
    ) -> dict[str, GuidedStyleLoss]:
        """Per style layer, one guided Gram loss over the regions that have a style."""
        masks = region_masks(self.labels, self.label_styles, shape, device)
        styled = [(mask, style) for mask, style in masks if style != CONTENT]

        def target(style: int | str, layer: str) -> torch.Tensor:
            return (blended if style == BLEND else style_sets[int(style)])[layer].target

        return {
            layer: GuidedStyleLoss(
                [mask for mask, _ in styled], [target(style, layer) for _, style in styled]
            ).to(device)
            for layer in blended
        }


def parse_label_styles(spec: object, styles: int) -> dict[int, int | str]:
    """``{label: style index | "content"}`` from a dict or ``"1:0,2:1,3:content"``."""
    if spec is None:
        return {}
    if isinstance(spec, str):
        pairs = [part.split(":", 1) for part in spec.split(",") if part.strip()]
        if any(len(pair) != 2 for pair in pairs):
            raise ValueError(f"label_styles must look like '1:0,2:1,3:content'; got {spec!r}")
        spec = {key.strip(): value.strip() for key, value in pairs}
    if not isinstance(spec, Mapping):
        raise ValueError("label_styles must map label values to a style index or 'content'")
    parsed: dict[int, int | str] = {}
    for key, value in spec.items():
        try:
            label = int(key)
        except (TypeError, ValueError):
            raise ValueError(f"label_styles: {key!r} is not a label value (an integer)") from None
        if value == CONTENT:
            parsed[label] = CONTENT
            continue
        try:
            index = int(value)
        except (TypeError, ValueError):
            raise ValueError(
                f"label_styles: label {label} maps to {value!r}; use a style index or 'content'"
            ) from None
        if not 0 <= index < styles:
            raise ValueError(
                f"label_styles: label {label} maps to style {index}, but there are {styles} "
                f"style image(s) (indices 0 to {styles - 1})"
            )
        parsed[label] = index
    return parsed


def check_labels(labels: object, plane_shape: tuple[int, int]) -> np.ndarray:
    """An integer (H, W) array the size of the content plane, or a readable error."""
    array = np.asarray(labels)
    if array.dtype.kind not in "iub":
        raise ValueError(f"labels must be an integer image (a Labels layer); got {array.dtype}")
    if array.shape != tuple(plane_shape):
        raise ValueError(
            f"labels are {array.shape[0] if array.ndim else 0}×"
            f"{array.shape[1] if array.ndim > 1 else 0} but the content plane is "
            f"{plane_shape[0]}×{plane_shape[1]}; they must be the same size"
        )
    return array.astype(np.int64, copy=False)


def region_masks(
    labels: np.ndarray,
    label_styles: Mapping[int, int | str],
    shape: tuple[int, int],
    device: torch.device,
) -> list[tuple[torch.Tensor, int | str]]:
    """(mask at the working size, style) per region; unlisted labels form one region."""
    resized = F.interpolate(
        torch.from_numpy(labels)[None, None].float(), size=shape, mode="nearest-exact"
    )[0, 0].to(torch.int64)
    regions: list[tuple[torch.Tensor, int | str]] = []
    listed = torch.zeros(shape, dtype=torch.bool)
    for label, style in label_styles.items():
        inside = resized == label
        listed |= inside
        if inside.any():
            regions.append((inside.float().to(device), style))
    if (~listed).any():
        regions.append(((~listed).float().to(device), BLEND))
    return regions


class GuidedStyleLoss(nn.Module):
    """Drop-in for a layer's :class:`~.losses.StyleLoss`: one Gram loss per region."""

    def __init__(self, masks: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> None:
        super().__init__()
        total = float(sum(mask.sum() for mask in masks)) or 1.0
        self.shares = [float(mask.sum()) / total for mask in masks]
        self.masks = list(masks)
        for number, target in enumerate(targets):
            self.register_buffer(f"target{number}", target.detach().float())
        self._resized: dict[tuple[int, int], list[torch.Tensor]] = {}

    def mean_square(self) -> torch.Tensor:
        """The regions' target mean squares, weighted by their shares (for normalisation)."""
        return sum(
            share * mean_square(getattr(self, f"target{number}"))
            for number, share in enumerate(self.shares)
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        n, c, h, w = features.shape
        masks = self._masks_at((h, w))
        flat = features.float().permute(0, 2, 3, 1).reshape(n, h * w, c)
        loss = features.new_zeros((), dtype=torch.float32)
        for number, (mask, share) in enumerate(zip(masks, self.shares, strict=True)):
            weighted = flat * mask.reshape(1, h * w, 1)
            area = mask.sum().clamp_min(1e-6)
            gram = torch.bmm(weighted.transpose(1, 2), weighted) / (c * area)
            loss = loss + share * F.mse_loss(gram, getattr(self, f"target{number}"))
        return loss

    def _masks_at(self, shape: tuple[int, int]) -> list[torch.Tensor]:
        """Each mask at a layer's resolution: the share of each cell inside the region."""
        if shape not in self._resized:
            self._resized[shape] = [
                F.interpolate(mask[None, None], size=shape, mode="area")[0, 0]
                for mask in self.masks
            ]
        return self._resized[shape]

"""The three terms of Gatys et al.: content, style (Gram) and total variation.

Each loss is a tiny module holding its target as a buffer, so targets move with
``.to(device)`` and are computed once per run. Features may arrive in bf16 from
autocast; every loss computes in fp32, where Gram matrices need the range.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Channel correlations normalised by C·H·W, so the scale does not depend on size.

    Features arrive channels-last, where (N, H·W, C) is a free view; the product
    then needs no copy, and its backward one matrix product instead of two.
    """
    n, c, h, w = features.shape
    flat = features.float().permute(0, 2, 3, 1).reshape(n, h * w, c)
    return _Gram.apply(flat) / (c * h * w)


class _Gram(torch.autograd.Function):
    """FᵀF for F of shape (N, H·W, C); d(FᵀF) is F(G + Gᵀ) for upstream gradient G."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, flat: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(flat)
        return torch.bmm(flat.transpose(1, 2), flat)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:
        (flat,) = ctx.saved_tensors
        return torch.bmm(flat, grad + grad.transpose(1, 2))


class ContentLoss(nn.Module):
    """Mean squared difference of feature maps at one layer."""

    def __init__(self, target: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("target", target.detach().float())

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(features.float(), self.target)


class StyleLoss(nn.Module):
    """Mean squared difference of Gram matrices at one layer."""

    def __init__(self, target_features: torch.Tensor | None = None) -> None:
        super().__init__()
        if target_features is not None:
            self.register_buffer("target", gram_matrix(target_features.detach()))

    @classmethod
    def from_gram(cls, gram: torch.Tensor) -> StyleLoss:
        """A loss towards a given Gram matrix (a blend of several styles)."""
        loss = cls()
        loss.register_buffer("target", gram.detach().float())
        return loss

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(gram_matrix(features), self.target)


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between neighbouring pixels (smoothness prior)."""
    dy = image[..., 1:, :] - image[..., :-1, :]
    dx = image[..., :, 1:] - image[..., :, :-1]
    return dy.pow(2).mean() + dx.pow(2).mean()


class StyleTransferLoss(nn.Module):
    """Weighted sum of all terms; returns each weighted term and their total.

    Reported losses are the weighted terms, so the numbers a user sees add up to
    the total being minimised. Style targets are fixed for a run; the content
    target (and, in stacks, the neighbouring slice's result) change per plane.
    """

    def __init__(
        self,
        content: dict[str, ContentLoss],
        style: dict[str, tuple[StyleLoss, float]],
        content_weight: float,
        style_weight: float,
        tv_weight: float,
        slice_weight: float | None = None,
    ) -> None:
        super().__init__()
        self.content = nn.ModuleDict(content)
        self.style = nn.ModuleDict({name: loss for name, (loss, _) in style.items()})
        self.style_layer_weights = {name: weight for name, (_, weight) in style.items()}
        self.weights = {"content": content_weight, "style": style_weight, "tv": tv_weight}
        if slice_weight is not None:
            self.weights["slice"] = slice_weight
        self.reference: dict[str, ContentLoss] = {}

    def set_content(self, features: dict[str, torch.Tensor]) -> None:
        """New content targets for the next plane (the style targets stay)."""
        self.content = nn.ModuleDict({name: ContentLoss(features[name]) for name in self.content})

    def set_reference(self, features: dict[str, torch.Tensor] | None) -> None:
        """Content-layer features of the previous slice's result, for the inter-slice term.

        In the spirit of Ruder et al.'s temporal term with identity warping
        (neighbouring slices of a volume are already aligned). It compares features
        at the content layers rather than pixels, so it is in the content term's
        units whatever the loss network: ``slice_weight`` = ``content_weight``
        weighs "look like your neighbour" as much as "look like your slice".
        """
        features = features or {}
        self.reference = {name: ContentLoss(features[name]) for name in features}

    def forward(
        self, features: dict[str, torch.Tensor], image: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        zero = image.new_zeros(())
        content = sum((loss(features[name]) for name, loss in self.content.items()), zero)
        style = sum(
            (
                self.style_layer_weights[name] * loss(features[name])
                for name, loss in self.style.items()
            ),
            zero,
        )
        terms = {
            "content": self.weights["content"] * content,
            "style": self.weights["style"] * style,
            "tv": self.weights["tv"] * total_variation(image) if self.weights["tv"] else zero,
        }
        if "slice" in self.weights:
            near = sum((loss(features[name]) for name, loss in self.reference.items()), zero)
            terms["slice"] = self.weights["slice"] * near
        terms["total"] = sum(terms.values(), zero)
        return terms

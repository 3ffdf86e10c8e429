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

    def __init__(self, target_features: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("target", gram_matrix(target_features.detach()))

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
    the total being minimised.
    """

    def __init__(
        self,
        content: dict[str, ContentLoss],
        style: dict[str, tuple[StyleLoss, float]],
        content_weight: float,
        style_weight: float,
        tv_weight: float,
    ) -> None:
        super().__init__()
        self.content = nn.ModuleDict(content)
        self.style = nn.ModuleDict({name: loss for name, (loss, _) in style.items()})
        self.style_layer_weights = {name: weight for name, (_, weight) in style.items()}
        self.weights = {"content": content_weight, "style": style_weight, "tv": tv_weight}

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
        terms["total"] = terms["content"] + terms["style"] + terms["tv"]
        return terms

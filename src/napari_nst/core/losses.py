"""The three terms of Gatys et al.: content, style (Gram) and total variation.

Each loss is a tiny module holding its target as a buffer, so targets move with
``.to(device)`` and are computed once per run. Features may arrive in bf16 from
autocast; every loss computes in fp32, where Gram matrices need the range.

**Normalisation** (``loss_norm="target"``, the default). A raw mean squared error
carries the scale of the loss network: the Caffe VGG19 (0–255 input) has features
~60× larger than torchvision's, so its style term (4th power of the features)
outweighs the content term (2nd power) by a factor of thousands, and no single
``style_weight`` can mean the same on both. Each term is therefore divided by
its target's mean square: the content term is ``MSE(F, Fc) / mean(Fc²)`` per
content layer, the style term ``MSE(G, Gs) / mean(Gs²)`` per style layer. Each term
is then a dimensionless relative distance, unchanged when the features are rescaled
by any factor and nearly so across working sizes, and they are exactly the
distances :mod:`.quality` measures. Total variation stays absolute (the image in
[0, 1] is the same for every loss network, and a stylised texture's neighbour
differences sit at VGG's pixel scale, about 0.01 at any size); dividing it by the
content's own would smooth a micrograph 13× harder than a photo. (crowsonkb's
style-transfer-pytorch instead scales each MSE to a unit-L1 gradient with respect
to its own input; that stays dependent on the feature scale through the network,
where this does not.)
``loss_norm="none"`` is the raw MSE of earlier versions, kept so their recipes
replay bit for bit.
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


def mean_square(tensor: torch.Tensor) -> torch.Tensor:
    """The divisor that makes a loss towards ``tensor`` relative (1 for an all-zero one)."""
    value = tensor.detach().float().pow(2).mean()
    return torch.where(value > 0, value, torch.ones_like(value))


class ContentLoss(nn.Module):
    """Mean squared difference of feature maps at one layer."""

    def __init__(self, target: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("target", target.detach().float())
        self.register_buffer("divisor", mean_square(self.target))

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

    def mean_square(self) -> torch.Tensor:
        return mean_square(self.target)

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
    With ``normalize`` each term is relative to its target (module docstring).
    """

    def __init__(
        self,
        content: dict[str, ContentLoss],
        style: dict[str, tuple[StyleLoss, float]],
        content_weight: float,
        style_weight: float,
        tv_weight: float,
        slice_weight: float | None = None,
        normalize: bool = True,
    ) -> None:
        super().__init__()
        self.normalize = normalize
        self.content = nn.ModuleDict(content)
        self.style = nn.ModuleDict({name: loss for name, (loss, _) in style.items()})
        self.style_layer_weights = {
            name: weight / (float(loss.mean_square()) if normalize else 1.0)
            for name, (loss, weight) in style.items()
        }
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
        content = self._relative(self.content, features, zero)
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
            terms["slice"] = self.weights["slice"] * self._relative(self.reference, features, zero)
        terms["total"] = sum(terms.values(), zero)
        return terms

    def _relative(self, losses, features: dict[str, torch.Tensor], zero: torch.Tensor):
        """Σ over layers of each content-like loss, over its target's mean square if normalised."""
        total = zero
        for name, loss in losses.items():
            value = loss(features[name])
            total = total + (value / loss.divisor if self.normalize else value)
        return total

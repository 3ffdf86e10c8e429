"""Train a fast-style network for one style (Johnson et al. 2016), as a generator.

The recipe is pytorch/examples' ``fast_neural_style``: a TransformerNet, a frozen
VGG loss network, content at relu2_2, style Gram matrices at relu1_2, relu2_2,
relu3_3 and relu4_3, Adam at 1e-3, 256 px crops in batches of 4. The loss network
is VGG19 from the same weight sources as the Gatys engine (those layers exist in
it as in VGG16), the bundled original VGG19 by default. The losses are normalised
as the Gatys engine's (``loss_norm="target"``: each term relative to its target's
mean square), so the weights mean the same on any loss network; ``"none"`` gives
pytorch/examples' raw MSE, where its weights 1e5 and 1e10 apply. Crops are taken
at random places and scales (``crop="random"``, with mirroring), so a few dozen
images give many different views; ``"center"`` is the examples' centre crop.
Models are saved as plain state dicts that ``neural_style.py eval`` loads
unchanged; our record goes in a sidecar JSON (or the header of a ``.safetensors``
file).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from . import devices
from .images import Layout, inspect, read_plane, resize, working_shape
from .losses import gram_matrix, mean_square
from .networks import TransformerNet, decoder_layers, vgg_encoder
from .options import (
    LOSS_NORMS,
    PRECISIONS,
    check_choice,
    check_integer,
    check_non_negative,
    current_names,
    layer_list,
)
from .provenance import versions
from .step import STOP, Step
from .vgg import VGGFeatures, check_covers, load_vgg19

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"}
CROPS = ("random", "center")
DEFAULT_TRAIN_STYLE_WEIGHT = 4.0
"""Style weight of the normalised training loss (content 1)."""
MAX_ZOOM = 2.0
"""Random crops see between the whole shorter side and half of it (up to 2× zoom)."""


@dataclass(frozen=True)
class TrainOptions:
    """Training parameters; defaults are pytorch/examples' (``steps`` replaces epochs)."""

    steps: int = 2000
    batch_size: int = 4
    image_size: int = 256
    style_size: int | None = None
    content_weight: float = 1.0
    style_weight: float = DEFAULT_TRAIN_STYLE_WEIGHT
    tv_weight: float = 0.0
    learning_rate: float = 1e-3
    content_layers: tuple[str, ...] = ("relu2_2",)
    style_layers: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
    checkpoint_every: int = 500
    vgg: str = "auto"
    device: str = "auto"
    seed: int = 42
    loss_norm: str = "target"
    crop: str = "random"
    precision: str = "auto"

    @classmethod
    def from_kwargs(cls, options: dict[str, Any]) -> TrainOptions:
        options = current_names(options)
        unknown = sorted(set(options) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown training option(s) {', '.join(map(repr, unknown))}")
        return cls(**options)

    def __post_init__(self) -> None:
        check_integer("steps", self.steps, minimum=1)
        check_integer("batch_size", self.batch_size, minimum=1, maximum=1024)
        check_integer("image_size", self.image_size, minimum=32, maximum=4096)
        if self.style_size is not None:
            check_integer("style_size", self.style_size, minimum=32, maximum=4096)
        check_integer("checkpoint_every", self.checkpoint_every, minimum=1)
        check_integer("seed", self.seed, minimum=0)
        check_choice("loss_norm", self.loss_norm, LOSS_NORMS)
        check_choice("crop", self.crop, CROPS)
        check_choice("precision", self.precision, PRECISIONS)
        for name in ("content_weight", "style_weight", "tv_weight", "learning_rate"):
            check_non_negative(name, getattr(self, name))
        object.__setattr__(
            self, "content_layers", layer_list("content_layers", self.content_layers)
        )
        object.__setattr__(self, "style_layers", layer_list("style_layers", self.style_layers))

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


class TrainingImages:
    """Training images from a folder (searched recursively) or the planes of a stack."""

    def __init__(self, source: str | os.PathLike | np.ndarray | Sequence[np.ndarray]) -> None:
        self._files: list[Path] = []
        self._stack: Any = None
        self._layout: Layout | None = None
        if isinstance(source, str | os.PathLike):
            folder = Path(source).expanduser()
            if folder.is_file():  # a TIFF stack (or one image) on disk
                from .files import read_image

                source = read_image(folder, "training images")
            elif folder.is_dir():
                self._files = sorted(
                    p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
                )
                if not self._files:
                    raise ValueError(
                        f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}"
                    )
                return
            else:
                raise ValueError(f"training images not found: {folder}")
        array = np.asarray(source) if isinstance(source, list | tuple) else source
        self._layout = inspect(array, "training images", stack=True)
        self._stack = array

    def __len__(self) -> int:
        return len(self._files) if self._files else len(self._layout.indices)  # type: ignore[union-attr]

    def load(self, number: int, size: int, rng: np.random.Generator | None = None) -> torch.Tensor:
        """Image ``number`` as (3, size, size) in 0–255: shorter side resized, centre crop;
        with ``rng``, a square of random side and place, mirrored half the time, resized."""
        if self._files:
            from .files import read_image

            data = read_image(self._files[number], "training image")
            layout = inspect(data, f"training image {self._files[number]}")
            plane = read_plane(data, (), layout)
        else:
            assert self._layout is not None
            plane = read_plane(self._stack, self._layout.indices[number], self._layout)
        image = _rgb_tensor(plane.unit)
        if rng is not None:
            image = _random_square(image, rng)
        return _square(image, size) * 255


def _rgb_tensor(unit: np.ndarray) -> torch.Tensor:
    tensor = torch.from_numpy(np.ascontiguousarray(unit)).permute(2, 0, 1)
    return tensor.expand(3, -1, -1) if tensor.shape[0] == 1 else tensor


def _random_square(image: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """A square of 1/MAX_ZOOM to all of the shorter side, anywhere, mirrored half the time."""
    height, width = image.shape[-2:]
    side = round(min(height, width) / rng.uniform(1.0, MAX_ZOOM))
    top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
    square = image[:, top : top + side, left : left + side]
    return square.flip(-1) if rng.random() < 0.5 else square


def _square(image: torch.Tensor, size: int) -> torch.Tensor:
    height, width = image.shape[-2:]
    scale = size / min(height, width)
    shape = (max(size, round(height * scale)), max(size, round(width * scale)))
    resized = resize(image[None], shape)[0]
    top, left = (shape[0] - size) // 2, (shape[1] - size) // 2
    return resized[:, top : top + size, left : left + size]


def iter_train(
    style: object, images: Any, output: str | os.PathLike, **options: Any
) -> Iterator[Step]:
    """Train and stream :class:`Step`s; checkpoints are written to ``output`` as it goes.

    ``send(STOP)`` saves the model as it is and ends with a cancelled final step, so
    a cancelled run leaves a usable model. ``Step.saved`` names the file when written.
    """
    opts = TrainOptions.from_kwargs(options)
    dataset = TrainingImages(images)
    style_layout = inspect(style, "style image")
    style_unit = read_plane(style, (), style_layout).unit
    output = Path(output).expanduser()
    if output.suffix.lower() not in (".pth", ".pt", ".safetensors"):
        raise ValueError(f"save the model as .pth or .safetensors, not {output.name}")
    device = devices.resolve_device(opts.device)
    devices.resolve_precision(opts.precision, device)  # an impossible one fails here
    hint = "try a smaller batch size or image size (checkpoints written so far are kept)"
    return devices.guard(_train(opts, dataset, style_unit, output, device), device, hint)


def train(style: object, images: Any, output: str | os.PathLike, **options: Any) -> str:
    """Train to the end and return the model's path (see :func:`iter_train`)."""
    saved = None
    for step in iter_train(style, images, output, **options):
        saved = step.saved or saved
    assert saved is not None
    return saved


def _train(
    opts: TrainOptions,
    dataset: TrainingImages,
    style_unit: np.ndarray,
    output: Path,
    device: torch.device,
) -> Iterator[Step]:
    start = time.perf_counter()
    precision = devices.resolve_precision(opts.precision, device)
    network = load_vgg19(opts.vgg, seed=opts.seed)
    check_covers(network, opts.content_layers + opts.style_layers)
    devices.configure(device)
    vgg = VGGFeatures(network.convs, opts.content_layers + opts.style_layers, network.preprocess)
    vgg = vgg.to(device)
    style = _rgb_tensor(style_unit)[None]
    if opts.style_size:
        style = resize(style, working_shape(style.shape[-2:], opts.style_size))
    with torch.no_grad():
        style_features = vgg(style.to(device))
        grams = {name: gram_matrix(style_features[name]) for name in opts.style_layers}
    normalize = opts.loss_norm == "target"
    style_divisors = {
        name: mean_square(gram) if normalize else gram.new_ones(()) for name, gram in grams.items()
    }

    torch.manual_seed(opts.seed)
    net = TransformerNet().to(device).train()
    optimizer = torch.optim.Adam(net.parameters(), lr=opts.learning_rate)
    order = np.random.default_rng(opts.seed)
    record = {
        "params": opts.to_dict(),
        "precision": precision,
        "vgg": network.describe(),
        "versions": versions(),
    }
    networks = (net, vgg, lambda: devices.autocast(device, precision))

    def one_step() -> dict[str, float]:
        batch = _batch(dataset, order, opts).to(device)
        return _train_step(networks, (grams, style_divisors), batch, optimizer, opts)

    def save(step: int, losses: dict[str, float]) -> str:
        return save_model(net, output, record | {"step": step, "losses": losses})

    yield from _loop(start, opts.steps, opts.checkpoint_every, one_step, save)


def _batch(dataset: TrainingImages, order: np.random.Generator, opts: Any) -> torch.Tensor:
    """``opts.batch_size`` images drawn with ``order``, each a crop (random or central)
    at ``opts.image_size``: (B, 3, h, w) in 0…255."""
    picks = order.integers(0, len(dataset), opts.batch_size)
    crops = order if opts.crop == "random" else None
    return torch.stack([dataset.load(int(i), opts.image_size, crops) for i in picks])


def _loop(
    start: float,
    steps: int,
    checkpoint_every: int,
    one_step: Callable[[], dict[str, float]],
    save: Callable[[int, dict[str, float]], str],
) -> Iterator[Step]:
    """A training loop's stream: ``one_step`` (returning its losses) ``steps`` times, the
    file saved every ``checkpoint_every`` steps and at the end; ``send(STOP)`` saves the
    file as it is and ends with a cancelled step, so a cancelled run leaves a usable one.
    Elapsed times count from ``start`` (setting up included)."""
    for step in range(1, steps + 1):
        losses = one_step()
        last = step == steps
        saved = save(step, losses) if last or step % checkpoint_every == 0 else None
        elapsed = time.perf_counter() - start
        reply = yield Step(step, steps, losses, elapsed, done=last, saved=saved)
        if reply == STOP and not last:
            saved = save(step, losses)
            yield Step(step, steps, losses, elapsed, done=True, cancelled=True, saved=saved)
            return


def _train_step(networks, style_targets, batch, optimizer, opts) -> dict[str, float]:
    """One Adam step; the networks run under ``autocast`` (bf16 where it is fast), the
    losses in fp32."""
    net, vgg, autocast = networks
    grams, style_divisors = style_targets
    normalize = opts.loss_norm == "target"
    with torch.inference_mode(False), torch.enable_grad():
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            styled = net(batch)
            features_y = vgg(styled / 255)
            with torch.no_grad():
                features_x = vgg(batch / 255)
        styled = styled.float()
        features_y = {name: value.float() for name, value in features_y.items()}
        features_x = {name: value.float() for name, value in features_x.items()}
        content = sum(
            F.mse_loss(features_y[n], features_x[n])
            / (mean_square(features_x[n]) if normalize else 1.0)
            for n in opts.content_layers
        )
        style = sum(
            F.mse_loss(gram_matrix(features_y[n]), grams[n].expand(len(batch), -1, -1))
            / style_divisors[n]
            for n in opts.style_layers
        )
        terms = {"content": opts.content_weight * content, "style": opts.style_weight * style}
        if opts.tv_weight:
            tv = (styled[..., 1:, :] - styled[..., :-1, :]).abs().mean() + (
                styled[..., 1:] - styled[..., :-1]
            ).abs().mean()
            terms["tv"] = opts.tv_weight * tv
        terms["total"] = sum(terms.values())
        terms["total"].backward()
        optimizer.step()
    return {name: float(value.detach()) for name, value in terms.items()}


def save_model(net: TransformerNet, path: Path, record: dict[str, Any]) -> str:
    """Write the state dict atomically; metadata in ``path.json`` or the safetensors header."""
    from .files import atomic_write, write_json

    state = {key: value.detach().cpu().contiguous() for key, value in net.state_dict().items()}
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import save_file

        metadata = {"napari_nst": json.dumps(record)}
        return str(atomic_write(path, lambda file: save_file(state, file, metadata=metadata)))
    atomic_write(path, lambda file: torch.save(state, file))
    write_json(path.with_name(path.name + ".json"), record)
    return str(path)


# -- decoders for universal style transfer -------------------------------------------


@dataclass(frozen=True)
class DecoderOptions:
    """Training a decoder that inverts the bundled VGG19 at one level (Li et al. 2017:
    pixel plus feature reconstruction loss; here each term relative to its target's
    mean square, so ``feature_weight`` 1 weighs them alike). Adam, its learning rate
    falling to 0 along a cosine over ``steps``."""

    level: str = "relu3_1"
    steps: int = 2000
    batch_size: int = 8
    image_size: int = 128
    learning_rate: float = 1e-3
    feature_weight: float = 1.0
    checkpoint_every: int = 200
    device: str = "auto"
    seed: int = 42
    crop: str = "random"
    precision: str = "auto"

    @classmethod
    def from_kwargs(cls, options: dict[str, Any]) -> DecoderOptions:
        unknown = sorted(set(options) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown decoder training option(s) {', '.join(map(repr, unknown))}")
        return cls(**options)

    def __post_init__(self) -> None:
        from .networks import LEVELS

        check_choice("level", self.level, LEVELS)
        check_integer("steps", self.steps, minimum=1)
        check_integer("batch_size", self.batch_size, minimum=1, maximum=1024)
        check_integer("image_size", self.image_size, minimum=32, maximum=4096)
        check_integer("checkpoint_every", self.checkpoint_every, minimum=1)
        check_integer("seed", self.seed, minimum=0)
        check_choice("crop", self.crop, CROPS)
        check_choice("precision", self.precision, PRECISIONS)
        for name in ("feature_weight", "learning_rate"):
            check_non_negative(name, getattr(self, name))


def iter_train_decoder(images: Any, output: str | os.PathLike, **options: Any) -> Iterator[Step]:
    """Train the decoder of one level and stream :class:`Step`s (losses, PSNR of the
    batch); ``output`` (a ``.safetensors`` file) is written every ``checkpoint_every``
    steps and at the end, atomically. ``send(STOP)`` saves the decoder as it is and ends
    with a cancelled step, so a cancelled run leaves a usable file."""
    opts = DecoderOptions.from_kwargs(options)
    dataset = TrainingImages(images)
    output = Path(output).expanduser()
    if output.suffix.lower() != ".safetensors":
        raise ValueError(f"save the decoder as .safetensors, not {output.name}")
    device = devices.resolve_device(opts.device)
    devices.resolve_precision(opts.precision, device)
    hint = "try a smaller batch size or image size (checkpoints written so far are kept)"
    return devices.guard(_train_decoder(opts, dataset, output, device), device, hint)


def train_decoder(images: Any, output: str | os.PathLike, **options: Any) -> str:
    """Train to the end and return the decoder's path (see :func:`iter_train_decoder`)."""
    saved = None
    for step in iter_train_decoder(images, output, **options):
        saved = step.saved or saved
    assert saved is not None
    return saved


def _train_decoder(
    opts: DecoderOptions, dataset: TrainingImages, output: Path, device: torch.device
) -> Iterator[Step]:
    start = time.perf_counter()
    precision = devices.resolve_precision(opts.precision, device)
    vgg = load_vgg19("bundled")
    encoder = vgg_encoder(vgg, opts.level).to(device, memory_format=torch.channels_last)
    torch.manual_seed(opts.seed)
    decoder = decoder_layers(opts.level).to(device, memory_format=torch.channels_last).train()
    order = np.random.default_rng(opts.seed)
    optimizer: torch.optim.Adam | None = None
    schedule: Any = None
    record = {
        "params": asdict(opts),
        "precision": precision,
        "vgg": vgg.describe(),
        "versions": versions(),
    }
    header = {"level": opts.level, "encoder_sha256": str(vgg.sha256)}

    def save(step: int, losses: dict[str, float]) -> str:
        return save_decoder(decoder, output, header, record | {"step": step, "losses": losses})

    def one_step() -> dict[str, float]:
        nonlocal optimizer, schedule
        batch = _batch(dataset, order, opts) / 255
        batch = batch.to(device).contiguous(memory_format=torch.channels_last)
        if optimizer is None:  # VGG19's features are in the hundreds: start at their scale
            optimizer = _scaled_adam(decoder, encoder(batch), opts.learning_rate)
            schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, opts.steps)
        with torch.inference_mode(False), torch.enable_grad():
            optimizer.zero_grad(set_to_none=True)
            with devices.autocast(device, precision):
                with torch.no_grad():
                    target = encoder(batch)
                decoded = decoder(target)
                features = encoder(decoded)
            target = target.float()
            pixel = F.mse_loss(decoded.float(), batch) / mean_square(batch)
            feature = F.mse_loss(features.float(), target) / mean_square(target)
            total = pixel + opts.feature_weight * feature
            total.backward()
            optimizer.step()
            schedule.step()
        mse = F.mse_loss(decoded.detach().float().clamp(0, 1), batch)
        return {
            "pixel": float(pixel.detach()),
            "feature": float(feature.detach()),
            "total": float(total.detach()),
            "psnr": float(-10 * torch.log10(mse.clamp_min(1e-10))),
        }

    yield from _loop(start, opts.steps, opts.checkpoint_every, one_step, save)


@torch.no_grad()
def _scaled_adam(
    decoder: torch.nn.Module, features: torch.Tensor, learning_rate: float
) -> torch.optim.Adam:
    """Adam for a decoder whose input is ``features``' scale (VGG19's are in the hundreds):
    the first convolution starts divided by their root mean square and learns at a rate
    divided by it too (Adam's steps do not shrink with the gradient), the last one's bias
    starts at mid-gray."""
    convs = [m for m in decoder.modules() if isinstance(m, torch.nn.Conv2d)]
    scale = float(mean_square(features.float()).sqrt().clamp_min(1e-6))
    convs[0].weight.div_(scale)
    convs[-1].bias.fill_(0.5)
    first = {id(p) for p in convs[0].parameters()}
    rest = [p for p in decoder.parameters() if id(p) not in first]
    groups = [{"params": [convs[0].weight], "lr": learning_rate / scale},
              {"params": [convs[0].bias, *rest]}]  # fmt: skip
    return torch.optim.Adam(groups, lr=learning_rate)


def save_decoder(
    decoder: torch.nn.Module, path: Path, header: dict[str, str], record: dict[str, Any]
) -> str:
    """The decoder's weights as ``.safetensors``, atomically; its level, encoder and
    training record in the header."""
    from safetensors.torch import save_file

    from .files import atomic_write

    state = {k: v.detach().float().cpu().contiguous() for k, v in decoder.state_dict().items()}
    metadata = header | {"napari_nst": json.dumps(record)}
    return str(atomic_write(path, lambda file: save_file(state, file, metadata=metadata)))

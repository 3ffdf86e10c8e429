"""The command line's flags: the engine's options for ``stylize`` and ``batch``, and
``train``'s, in kebab-case.

Every flag defaults to ``SUPPRESS``: an unset flag stays out of the namespace, so
:class:`~napari_nst.core.options.Options` (or a batch recipe) supplies the
default and the help texts only name it.
"""

from __future__ import annotations

import argparse
import sys
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


_TYPES = {"int": int, "float": float, "floats": _float_list, "names": _comma_list}
"""argparse types of the table's kinds (str and mapping stay text; bool is a switch)."""


def add_run_options(parser: argparse.ArgumentParser, leave_out: tuple[str, ...] = ()) -> None:
    """The engine's option flags, shared by ``stylize`` and ``batch``: one per entry of
    the option table, under its group's heading (as the widget's sections).

    Unset flags stay out of the namespace (``SUPPRESS``), so the engine's defaults
    (or a batch recipe) apply.
    """
    from ..core.options import GROUPS, RENAMED, in_group

    for group, heading in GROUPS.items():
        section = parser.add_argument_group(f"{heading.lower()} options")
        for spec in in_group(group):
            if spec.name not in leave_out:
                section.add_argument(spec.flag, default=argparse.SUPPRESS, **_argument(spec))
    for old in RENAMED:  # still accepted, not shown: see commands.current_flags
        parser.add_argument(_flag(old), default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


class _CurrentChoice:
    """The type of a flag some of whose choices were renamed: an old one is accepted as
    today's (before argparse checks the choices), with a note."""

    def __init__(self, flag: str, renamed: dict[str, str]) -> None:
        self.flag, self.renamed = flag, renamed

    def __call__(self, text: str) -> str:
        if text not in self.renamed:
            return text
        note(f"{self.flag} {text} is now {self.flag} {self.renamed[text]}")
        return self.renamed[text]


def note(text: str) -> None:
    """A note on stderr that an old name was used; it still works."""
    print(f"napari-nst: note: {text}; the old name still works", file=sys.stderr)


def _argument(spec: Any) -> dict[str, Any]:
    """``add_argument``'s keywords for one option of the table."""
    from ..core.options import RENAMED_CHOICES, shown_default

    only = f"; {spec.methods[0]} only" if len(spec.methods) == 1 else ""
    keywords: dict[str, Any] = {"help": f"{spec.help} (default: {shown_default(spec)}{only})"}
    if spec.metavar:
        keywords["metavar"] = spec.metavar
    if spec.kind == "bool":
        keywords["action"] = argparse.BooleanOptionalAction
    elif spec.kind in _TYPES:
        keywords["type"] = _TYPES[spec.kind]
    if spec.choices:
        keywords["choices"] = list(spec.choices)
    if spec.name in RENAMED_CHOICES:
        keywords["type"] = _CurrentChoice(spec.flag, RENAMED_CHOICES[spec.name])
    return keywords


BATCH_EXAMPLES = """examples:
  napari-nst batch scans/ --style painting.jpg -o styled/ --preset faithful
  napari-nst batch "data/*.tif" --style painting.jpg -o styled/ --stack all --workers 2
  napari-nst batch photos/ -o styled/ --method fast --checkpoint mosaic.pth
  napari-nst batch photos/ --style painting.jpg -o styled/ --recipe tuned.json
"""


def add_batch_parser(commands: Any) -> None:
    batch = commands.add_parser(
        "batch",
        help="stylise many images (files, folders, globs, TIFF stacks) into OUTDIR",
        description="Stylise every image found in INPUTs into OUTDIR, one output and one "
        "record per input. Finished outputs are skipped when run again (--overwrite redoes "
        "them); --workers or --scheduler spread the items over Dask workers.",
        epilog=BATCH_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    add_run_options(batch, leave_out=("label_styles",))  # no label images in a batch


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
    train.add_argument("--vgg", default=opt, help="the loss network (auto = bundled; see stylize)")
    train.add_argument("--weights", default=opt, help=argparse.SUPPRESS)  # --vgg's old name
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


def add_train_decoder_parser(commands: Any) -> None:
    from ..core.options import LEVELS

    train = commands.add_parser(
        "train-decoder",
        help="train a decoder for universal style transfer (wct, adain) at one level",
        description="Train the decoder that inverts the bundled VGG19 at one level (Li et "
        "al. 2017: pixel + feature reconstruction); use the folder it is written to as "
        "--decoders (files named reluN_1.safetensors).",
    )
    train.add_argument(
        "--images", required=True,
        help="folder of training images (searched recursively) or a TIFF stack",
    )  # fmt: skip
    train.add_argument("--level", choices=LEVELS, default="relu3_1", help="(relu3_1)")
    train.add_argument(
        "-o", "--output", required=True,
        help="decoder file (.safetensors; named LEVEL.safetensors, its folder is --decoders)",
    )  # fmt: skip
    opt = argparse.SUPPRESS
    train.add_argument("--steps", type=int, default=opt, help="optimiser steps (2000)")
    train.add_argument("--batch-size", type=int, default=opt, help="(8)")
    train.add_argument("--image-size", type=int, default=opt, help="training crops in px (128)")
    train.add_argument(
        "--learning-rate", type=float, default=opt, help="Adam, cosine decay (1e-3)"
    )
    train.add_argument(
        "--feature-weight", type=float, default=opt,
        help="feature reconstruction relative to pixel reconstruction (1)",
    )  # fmt: skip
    train.add_argument("--checkpoint-every", type=int, default=opt, help="steps (200)")
    train.add_argument("--crop", choices=["random", "center"], default=opt, help="(random)")
    train.add_argument("--device", default=opt, help="auto (default), cpu, cuda, mps")
    train.add_argument("--seed", type=int, default=opt, help="(42)")
    train.add_argument("--log-json", metavar="PATH", help="write the training record as JSON")
    train.add_argument("--quiet", action="store_true", help="no progress bar")


SERVE_EXAMPLES = """examples:
  napari-nst serve                                  # http://127.0.0.1:8765, loopback only
  napari-nst serve --port 0 --data ~/nst-jobs       # any free port, jobs kept there
  printf '%s\\n' '{"content": "a.png", "style": "b.jpg", "output": "out.png"}' \\
      | napari-nst serve --stdio
"""


def add_serve_parser(commands: Any) -> None:
    serve = commands.add_parser(
        "serve",
        help="a job server for scripts and other programs (HTTP + WebSocket, or --stdio)",
        description="Run stylisation jobs for other programs: POST /jobs with the images "
        "and options, follow them (GET /jobs/ID or a WebSocket), fetch the result. Jobs "
        "and results are kept in --data, so a restarted server resumes them. Bound to "
        "127.0.0.1 unless --host says otherwise; any other address needs a token.",
        epilog=SERVE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8765, help="port (8765; 0: any free one)")
    serve.add_argument(
        "--data", metavar="DIR", help="folder of jobs and results (default: the user data folder)"
    )
    serve.add_argument(
        "--token",
        help="token clients must send (X-NST-Token); made up when --host is not loopback",
    )
    serve.add_argument(
        "--max-upload", type=float, default=64, metavar="MiB", help="request size limit (64)"
    )
    serve.add_argument("--threads", type=int, help="torch threads per job (default: all cores)")
    serve.add_argument(
        "--allow-origin", action="append", default=[], metavar="ORIGIN",
        help="a web page origin allowed to call the server (scheme://host:port); repeatable",
    )  # fmt: skip
    where = serve.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, help="run the jobs on N local Dask workers")
    where.add_argument("--scheduler", metavar="ADDRESS", help="run the jobs on this Dask cluster")
    serve.add_argument(
        "--stdio", action="store_true",
        help="read jobs as JSON lines on stdin (content, style, output paths, options) and "
        "write events as JSON lines on stdout, instead of serving HTTP",
    )  # fmt: skip

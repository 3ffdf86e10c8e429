"""``napari-nst``: the engine from a terminal.

Flags are the Python options in kebab-case and default to the same values (left
unset here so :class:`~napari_nst.core.options.Options` stays the single source of
defaults). Exit codes: 0 success, 2 bad input or usage (one line on stderr, no
traceback), 1 anything else (batch: some item failed), 130 interrupted (stylize
saves the best image so far; batch keeps its finished items).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from ._io import check_writable, read_image

PROG = "napari-nst"


class UsageError(Exception):
    """Raised instead of argparse's print-usage-and-exit, to keep errors to one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def _comma_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _float_list(text: str) -> list[float]:
    try:
        return [float(part) for part in _comma_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers separated by commas: {text!r}"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Neural style transfer for napari and the terminal.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = commands.add_parser("stylize", help="stylise CONTENT with STYLE and write OUT")
    run.add_argument("content", metavar="CONTENT", help="content image file")
    run.add_argument(
        "style",
        metavar="STYLE",
        nargs="*",
        help="style image(s) (paintings; several are blended, see --style-blend-weights; "
        "not used by --method fast)",
    )
    run.add_argument("-o", "--output", required=True, metavar="OUT", help="output image file")
    add_run_options(run)
    run.add_argument(
        "--labels",
        metavar="PATH",
        help="integer label image the size of CONTENT: a style per region (see --label-styles)",
    )
    run.add_argument(
        "--label-styles",
        metavar="L:S,...",
        help="label value to STYLE index (from 0) or 'content', e.g. 1:0,2:1,3:content",
    )
    run.add_argument("--log-json", metavar="PATH", help="write the run record as JSON")
    run.add_argument("--quiet", action="store_true", help="no progress bar")

    _add_batch_parser(commands)
    _add_train_parser(commands)
    commands.add_parser("demo", help="open napari with sample data and the Style Transfer widget")
    return parser


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """The engine's option flags, shared by ``stylize`` and ``batch``.

    Unset flags stay out of the namespace (``SUPPRESS``), so the engine's defaults
    (or a batch recipe) apply.
    """
    opt = argparse.SUPPRESS
    parser.add_argument(
        "--method", choices=["gatys", "fast"], default=opt, help="gatys (default) or fast"
    )
    parser.add_argument("--iterations", type=int, default=opt, help="optimisation steps (500)")
    parser.add_argument(
        "--size", type=int, default=opt, help="longest side of the working image (512)"
    )
    parser.add_argument("--content-weight", type=float, default=opt, help="(1)")
    parser.add_argument("--style-weight", type=float, default=opt, help="per style layer (1e6)")
    parser.add_argument("--tv-weight", type=float, default=opt, help="total variation (1)")
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
        "--weights", default=opt, help="torchvision (default), caffe, random, or a .pth path"
    )
    parser.add_argument("--device", default=opt, help="auto (default), cpu, cuda, cuda:N, mps")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default=opt)
    parser.add_argument("--seed", type=int, default=opt, help="(0)")
    parser.add_argument("--preview-every", type=int, default=opt, help=argparse.SUPPRESS)
    parser.add_argument(
        "--checkpoint", default=opt, help="fast-method model (.pth state dict or .safetensors)"
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
        help="log10 of the style/content ratio relative to the default (0; 1 = 10x more style)",
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


def _add_batch_parser(commands: Any) -> None:
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


def _add_train_parser(commands: Any) -> None:
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
    train.add_argument("--content-weight", type=float, default=opt, help="(1e5)")
    train.add_argument("--style-weight", type=float, default=opt, help="(1e10)")
    train.add_argument("--tv-weight", type=float, default=opt, help="(0)")
    train.add_argument("--learning-rate", type=float, default=opt, help="Adam (1e-3)")
    train.add_argument("--content-layers", type=_comma_list, default=opt, help="(relu2_2)")
    train.add_argument(
        "--style-layers", type=_comma_list, default=opt, help="(relu1_2,relu2_2,relu3_3,relu4_3)"
    )
    train.add_argument("--checkpoint-every", type=int, default=opt, help="steps (500)")
    train.add_argument("--weights", default=opt, help="loss network weights (torchvision)")
    train.add_argument("--device", default=opt, help="auto (default), cpu, cuda, mps")
    train.add_argument("--seed", type=int, default=opt, help="(42)")
    train.add_argument("--log-json", metavar="PATH", help="write the training record as JSON")
    train.add_argument("--quiet", action="store_true", help="no progress bar")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.command == "demo":
            return _demo()
        if args.command == "train":
            return _train(args)
        if args.command == "batch":
            return _batch(args)
        return _stylize(args)
    except UsageError as exc:
        return _fail(2, str(exc))
    except ValueError as exc:  # every input or option problem the engine reports
        return _fail(2, str(exc))
    except KeyboardInterrupt:
        return _fail(130, "interrupted")
    except Exception as exc:
        return _fail(1, f"{type(exc).__name__}: {exc}")


def _stylize(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .core import prepare
    from .core.record import RunRecord

    skip = {"command", "content", "style", "output", "log_json", "quiet", "labels"}
    options: dict[str, Any] = {k: v for k, v in vars(args).items() if k not in skip}
    if options.get("label_styles") is None:
        options.pop("label_styles", None)
    if args.labels:
        options["labels"] = read_image(args.labels, "labels image")
    content = read_image(args.content, "content image")
    if not args.style and options.get("method", "gatys") == "gatys":
        raise UsageError("STYLE is required (or use --method fast --checkpoint MODEL)")
    styles = [read_image(path, "style image") for path in args.style]
    run = prepare(content, styles[0] if len(styles) == 1 else styles or None, **options)
    rendering = run.rendering
    check_writable(args.output, len(rendering.shape), rgb=rendering.kind != "gray")
    style_names = args.style[0] if len(args.style) == 1 else args.style or None
    record = RunRecord(run.options.to_dict(), {"content": args.content, "style": style_names})
    steps = run.steps()
    result = rendering.empty()
    written = False  # any plane (or preview) in ``result`` yet
    # The bar starts with the first step: an error while loading weights stays one line,
    # and a download shows torch's own progress bar.
    bar = None
    try:
        for step in steps:
            if bar is None:
                bar = tqdm(total=step.total, unit="it", desc="stylizing", disable=args.quiet)
            where = {"plane": f"{step.plane + 1}/{step.planes}"} if step.planes > 1 else {}
            loss = {"loss": f"{step.losses['total']:.4g}"} if step.losses else {}
            bar.set_postfix(**loss, **where, refresh=False)
            bar.update(step.iteration - bar.n)
            record.update(step)
            if step.image is not None:
                result[step.index], written = step.image, True
    except KeyboardInterrupt:
        # The interrupt lands inside the engine; keep the finished planes and the
        # newest preview of the current one.
        steps.close()
        record.finish("cancelled", "interrupted")
        if not written:
            raise
        _save(result, args, run, record.to_dict() | run.info())
        return _fail(130, f"interrupted; the newest preview was written to {args.output}")
    finally:
        if bar is not None:
            bar.close()
    _save(result, args, run, record.to_dict() | run.info())
    return 0


def _train(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .core.training import iter_train

    skip = {"command", "style", "images", "output", "log_json", "quiet"}
    options: dict[str, Any] = {k: v for k, v in vars(args).items() if k not in skip}
    style = read_image(args.style, "style image")
    steps = iter_train(style, args.images, args.output, **options)
    history: list[dict[str, Any]] = []
    saved, bar = None, None
    try:
        for step in steps:
            if bar is None:
                bar = tqdm(total=step.total, unit="step", desc="training", disable=args.quiet)
            bar.set_postfix(loss=f"{step.losses['total']:.4g}", refresh=False)
            bar.update(step.iteration - bar.n)
            history.append({"iteration": step.iteration, "losses": step.losses})
            saved = step.saved or saved
    except KeyboardInterrupt:
        steps.close()
        where = f"the last checkpoint is {saved}" if saved else "no checkpoint was written yet"
        return _fail(130, f"interrupted; {where}")
    finally:
        if bar is not None:
            bar.close()
    if args.log_json:
        log = {"params": options, "steps": history, "output": saved}
        Path(args.log_json).write_text(json.dumps(log, indent=2) + "\n")
    return 0


def _save(image: Any, args: argparse.Namespace, run: Any, log: dict[str, Any]) -> None:
    """Write the image, then the record (CLI spelling: ``steps`` for the history)."""
    from ._batch_item import write_result

    path = write_result(image, args.output, run.rendering)
    if args.log_json:
        log["steps"] = log.pop("history")
        log["output"] = str(path)
        Path(args.log_json).write_text(json.dumps(log, indent=2) + "\n")


def _batch(args: argparse.Namespace) -> int:
    """Exit 0 when every item is done (or already was), 1 when some failed."""
    import os

    from tqdm import tqdm

    from . import batch

    skip = {"command", "inputs", "style", "output", "recipe", "overwrite", "workers"}
    skip |= {"scheduler", "threads", "quiet"}
    flags = {k: v for k, v in vars(args).items() if k not in skip}
    options = batch.options_with_recipe(args.recipe, flags)
    for name in ("workers", "threads"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise UsageError(f"--{name} must be at least 1")
    threads = args.threads
    if threads is None and args.workers:  # torch threads: the cores, shared by the workers
        threads = max(1, (os.cpu_count() or 1) // args.workers)
    if args.workers is not None or args.scheduler is not None:
        from ._dask import distributed_module

        distributed_module()  # not installed: say so before any work
    todo, finished = batch.plan(
        args.inputs, args.output, args.style, options, args.overwrite, threads
    )
    if finished and not args.quiet:
        print(
            f"{len(finished)} finished output(s) kept (--overwrite redoes them)", file=sys.stderr
        )
    done = failed = 0
    with (
        batch.execute(todo, args.scheduler, args.workers) as results,
        tqdm(total=len(todo), unit="item", desc="batch", disable=args.quiet) as bar,
    ):
        try:
            for result in results:
                bar.update(1)
                if result.status == "done":
                    done += 1
                    continue
                failed += 1
                bar.set_postfix(failed=failed, refresh=False)
                tqdm.write(f"{PROG}: error: {result.name}: {result.message}", file=sys.stderr)
        except KeyboardInterrupt:
            return _fail(130, f"interrupted after {done} item(s); run again to resume")
    if failed:
        return _fail(1, f"{failed} of {len(todo)} item(s) failed (see their .json records)")
    return 0


def _demo() -> int:
    import napari

    viewer = napari.Viewer(title="napari-nst demo")
    viewer.open_sample("napari-nst", "astronaut")
    viewer.open_sample("napari-nst", "starry_night")
    viewer.window.add_plugin_dock_widget("napari-nst", "Style Transfer")
    napari.run()
    return 0


def _fail(code: int, message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


def _version() -> str:
    from . import __version__

    return __version__


if __name__ == "__main__":
    raise SystemExit(main())

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
from typing import TYPE_CHECKING, Any, NoReturn

from .._wording import for_cli
from ..core.files import check_writable, read_image
from .options import (
    add_batch_parser,
    add_run_options,
    add_serve_parser,
    add_train_decoder_parser,
    add_train_parser,
    note,
)

if TYPE_CHECKING:
    from ..core.step import Run

PROG = "napari-nst"


STYLIZE_EXAMPLES = """examples:
  napari-nst samples && napari-nst stylize astronaut.png starry_night.jpg -o out.png
  napari-nst stylize scan.tif painting.jpg -o out.tif --preset faithful
  napari-nst stylize photo.jpg painting.jpg -o out.png --style-strength 1 --size 256
  napari-nst stylize photo.jpg -o out.png --method fast          # the shipped model
  napari-nst stylize photo.jpg a.jpg b.jpg -o out.png --style-blend-weights 2,1
  napari-nst stylize photo.jpg painting.jpg -o again.png --recipe out.json
"""


class UsageError(Exception):
    """Raised instead of argparse's print-usage-and-exit, to keep errors to one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Neural style transfer for napari and the terminal.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = commands.add_parser(
        "stylize",
        help="stylise CONTENT with STYLE and write OUT",
        description="Stylise CONTENT with the painting(s) STYLE and write OUT, with a "
        "progress bar, a time estimate and (--log-json) a run record that replays it. "
        "Only the essentials matter at first; the other groups are for tuning.",
        epilog=STYLIZE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
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
        "--recipe",
        metavar="JSON",
        help="options (and torch threads) from a run record or a dict; flags override it",
    )
    run.add_argument(
        "--threads", type=int, help="torch threads (default: the recipe's, else all cores)"
    )
    run.add_argument("--log-json", metavar="PATH", help="write the run record as JSON")
    run.add_argument("--quiet", action="store_true", help="no progress bar")

    add_batch_parser(commands)
    add_train_parser(commands)
    add_train_decoder_parser(commands)
    add_serve_parser(commands)
    samples = commands.add_parser(
        "samples",
        help="write the sample images (a photo, a micrograph, a painting) to try things on",
    )
    samples.add_argument("folder", nargs="?", default=".", help="where (default: here)")
    commands.add_parser("demo", help="open napari with sample data and the Style Transfer widget")
    return parser


def current_flags(args: argparse.Namespace) -> argparse.Namespace:
    """Flags under today's names (``--weights`` is ``--vgg``), with a note for each old
    one on stderr; the old names keep working (renamed choices: ``options._CurrentChoice``)."""
    from ..core.options import RENAMED, current_names

    given = vars(args)
    for old, new in RENAMED.items():
        if old in given:
            note(f"--{old.replace('_', '-')} is now --{new.replace('_', '-')}")
    return argparse.Namespace(**current_names(given, warn=False))


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = current_flags(build_parser().parse_args(argv))
        if args.command == "demo":
            return _demo()
        if args.command == "samples":
            return _samples(Path(args.folder))
        if args.command == "train":
            return _train(args)
        if args.command == "train-decoder":
            return _train_decoder(args)
        if args.command == "batch":
            return _batch(args)
        if args.command == "serve":
            return _serve(args)
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
    """Flags override the recipe; the run uses the recipe's torch threads unless
    ``--threads`` says otherwise (CPU results depend on them)."""
    from ..core.devices import torch_threads
    from ..core.provenance import differences, read_recipe

    skip = {"command", "content", "style", "output", "log_json", "quiet", "labels"}
    skip |= {"recipe", "threads"}
    options: dict[str, Any] = {k: v for k, v in vars(args).items() if k not in skip}
    if options.get("label_styles") is None:
        options.pop("label_styles", None)
    if args.threads is not None and args.threads < 1:
        raise UsageError("--threads must be at least 1")
    recipe = read_recipe(args.recipe) if args.recipe else None
    if recipe is not None:
        options = recipe.merged(options)
    threads = args.threads
    if threads is None and recipe is not None:
        threads = recipe.threads
    with torch_threads(threads):
        code, log = _run_stylize(args, options, recipe)
    for difference in differences(recipe, log) if recipe is not None else ():
        print(f"{PROG}: note: unlike the recipe's run, {difference}", file=sys.stderr)
    if "upsampled" in log and not args.quiet:
        print(f"{PROG}: note: {_upsampled(log['upsampled'])}", file=sys.stderr)
    return code


def _upsampled(resize: dict[str, list[int]]) -> str:
    (h, w), (height, width) = resize["from"], resize["to"]
    return (
        f"computed at {w}×{h} px and enlarged to {width}×{height} px, so it looks soft; "
        f"--output-size working writes the {w}×{h} px result, --size {max(height, width)} "
        "computes at full size (slower)"
    )


def _run_stylize(
    args: argparse.Namespace, options: dict[str, Any], recipe: Any = None
) -> tuple[int, dict[str, Any]]:
    from tqdm import tqdm

    from ..core import prepare
    from ..core.api import Collected, replayed_steps, run_to_end
    from ..core.optim import duration, long_run_note
    from ..core.provenance import RunRecord

    if args.labels:
        options["labels"] = read_image(args.labels, "labels image")
    content = read_image(args.content, "content image")
    if not args.style and options.get("method", "gatys") != "fast":
        raise UsageError("STYLE is required (or use --method fast --checkpoint MODEL)")
    styles = [read_image(path, "style image") for path in args.style]
    run = prepare(content, styles[0] if len(styles) == 1 else styles or None, **options)
    rendering = run.rendering
    check_writable(args.output, len(rendering.shape), rgb=rendering.kind != "gray")
    style_names = args.style[0] if len(args.style) == 1 else args.style or None
    record = RunRecord(run.options.to_dict(), {"content": args.content, "style": style_names})
    steps = replayed_steps(run, recipe)
    collected = Collected(run)
    # The bar starts with the first step: an error while loading VGG19 stays one line,
    # and a download shows torch's own progress bar.
    bar: Any = None
    noted = False

    def show(step: Any) -> None:
        nonlocal bar, noted
        if bar is None:  # tqdm's own estimate assumes equal iterations; levels differ
            bar = tqdm(
                total=step.total, unit="it", desc="stylizing", disable=args.quiet,
                bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]",
            )  # fmt: skip
            # Counted from the run's start, not the first step's: a one-pass AdaIN's
            # only step comes when the work is done.
            if not bar.disable:
                bar.start_t -= step.elapsed
        where = {"plane": f"{step.plane + 1}/{step.planes}"} if step.planes > 1 else {}
        loss = {"loss": f"{step.losses['total']:.4g}"} if step.losses else {}
        left = {"left": duration(step.remaining)} if step.remaining is not None else {}
        bar.set_postfix(**loss, **where, **left, refresh=False)
        if not noted and step.remaining is not None:
            noted = True
            note = long_run_note(step.elapsed + step.remaining, run.options.size, str(run.device))
            if note and not args.quiet:
                tqdm.write(f"{PROG}: {for_cli(note)}", file=sys.stderr)
        if bar.total != step.total:  # a replayed continuation adds iterations
            bar.total = step.total
        bar.update(step.iteration - bar.n)
        record.update(step)

    try:
        run_to_end(run, steps, on_step=show, into=collected)
    except KeyboardInterrupt:
        # The interrupt lands inside the engine; keep the finished planes and the
        # newest preview of the current one.
        steps.close()  # type: ignore[attr-defined]
        record.finish("cancelled", "interrupted")
        if not collected.written:
            raise
        log = _save(collected.image, args, run, record.to_dict() | run.info())
        return _fail(130, f"interrupted; the newest preview was written to {args.output}"), log
    finally:
        if bar is not None:
            bar.close()
    return 0, _save(collected.image, args, run, record.to_dict() | run.info())


def _train(args: argparse.Namespace) -> int:
    from ..core.training import iter_train

    skip = {"command", "style", "images", "output", "log_json", "quiet"}
    options: dict[str, Any] = {k: v for k, v in vars(args).items() if k not in skip}
    style = read_image(args.style, "style image")
    return _drive_training(iter_train(style, args.images, args.output, **options), args, options)


def _train_decoder(args: argparse.Namespace) -> int:
    from ..core.training import iter_train_decoder

    skip = {"command", "images", "output", "log_json", "quiet"}
    options: dict[str, Any] = {k: v for k, v in vars(args).items() if k not in skip}
    steps = iter_train_decoder(args.images, args.output, **options)
    return _drive_training(steps, args, options, f"decoder {args.level}")


def _drive_training(
    steps: Any, args: argparse.Namespace, options: dict[str, Any], what: str = "training"
) -> int:
    """A progress bar over a training stream; Ctrl+C keeps the last checkpoint."""
    from tqdm import tqdm

    history: list[dict[str, Any]] = []
    saved, bar = None, None
    try:
        for step in steps:
            if bar is None:
                bar = tqdm(total=step.total, unit="step", desc=what, disable=args.quiet)
            shown = {"loss": f"{step.losses['total']:.4g}"}
            if "psnr" in step.losses:
                shown["psnr"] = f"{step.losses['psnr']:.1f} dB"
            bar.set_postfix(shown, refresh=False)
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


def _save(image: Any, args: argparse.Namespace, run: Run, log: dict[str, Any]) -> dict[str, Any]:
    """Write the image, then the record (CLI spelling: ``steps`` for the history)."""
    from ..batch.item import write_result

    path = write_result(image, args.output, run.rendering)
    log["steps"] = log.pop("history")
    log["output"] = str(path)
    if args.log_json:
        Path(args.log_json).write_text(json.dumps(log, indent=2) + "\n")
    return log


def _batch(args: argparse.Namespace) -> int:
    """Exit 0 when every item is done (or already was), 1 when some failed."""

    from tqdm import tqdm

    from .. import batch

    skip = {"command", "inputs", "style", "output", "recipe", "overwrite", "workers"}
    skip |= {"scheduler", "threads", "quiet"}
    flags = {k: v for k, v in vars(args).items() if k not in skip}
    options = batch.options_with_recipe(args.recipe, flags)
    for name in ("workers", "threads"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise UsageError(f"--{name} must be at least 1")
    threads = args.threads
    if threads is None and args.workers:  # torch threads: the cores, shared by the workers
        from ..core.devices import cpu_threads

        threads = cpu_threads(share=args.workers)
    if args.workers is not None or args.scheduler is not None:
        from ..batch.cluster import distributed_module

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


def _serve(args: argparse.Namespace) -> int:
    """The job server; imported here, so that the other commands never load FastAPI."""
    if args.threads is not None and args.threads < 1:
        raise UsageError("--threads must be at least 1")
    if args.max_upload <= 0:
        raise UsageError("--max-upload must be greater than 0")
    if args.workers is not None and args.workers < 1:
        raise UsageError("--workers must be at least 1")
    if args.stdio and (args.workers or args.scheduler):
        raise UsageError("--stdio runs jobs in this process (no --workers or --scheduler)")
    if args.stdio:
        from ..server.stdio import serve_stdio

        return serve_stdio(sys.stdin, sys.stdout, args.data, args.threads)
    from ..server.serve import serve

    return serve(
        args.host, args.port, args.data, args.token, int(args.max_upload * 2**20),
        args.threads, tuple(args.allow_origin), args.scheduler, args.workers,
    )  # fmt: skip


def _samples(folder: Path) -> int:
    from .._sample_data import write_samples

    for path in write_samples(folder):
        print(path)
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
    print(f"{PROG}: error: {for_cli(message)}", file=sys.stderr)
    return code


def _version() -> str:
    from .. import __version__

    return __version__

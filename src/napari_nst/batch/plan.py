"""Batch runs: many content images, one style (or fast model), one output folder.

Each input file is one item: a 2-D image, or a stack (multi-page TIFF) run whole.
``OUTDIR/<name>`` keeps the input's path under its folder (or just its file name)
and suffix; ``OUTDIR/<name>.json`` beside it is the run record plus a ``batch``
section whose ``recipe`` (options, and SHA-256 of content, style and model) says
what the output was made from. An item is finished when its image exists and its
sidecar says ``done`` with the same recipe; a re-run skips finished items, so a
killed batch resumes where it stopped. The image is written first and the sidecar
last, both atomically, so a crash never leaves an output that looks finished.

:func:`~napari_nst.batch.item.run_item` is the unit of work for every runner: in this
process (:func:`execute`), or on a Dask cluster (:mod:`napari_nst.batch.cluster`).
No napari or Qt imports.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..core.files import EIGHT_BIT_SUFFIXES, TIFF_SUFFIXES, read_image
from .item import BatchError, Item, Result, run_item, sidecar

IMAGE_SUFFIXES = EIGHT_BIT_SUFFIXES | TIFF_SUFFIXES
"""What a folder or glob contributes; files named one by one may be any format."""


@dataclass
class Report:
    """What a batch did: ``results`` of the items it ran, names of those it skipped."""

    results: list[Result] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def done(self) -> list[str]:
        return [r.name for r in self.results if r.status == "done"]

    @property
    def failed(self) -> list[Result]:
        return [r for r in self.results if r.status != "done"]


def load_recipe(path: str | os.PathLike) -> dict[str, Any]:
    """Options from a JSON file: a run record (its ``params``) or a plain dict.

    JSON only, never code, validated: see :mod:`napari_nst.core.provenance`.
    """
    from ..core.provenance import read_recipe

    try:
        return read_recipe(path).options
    except ValueError as exc:
        raise BatchError(str(exc)) from None


def find_inputs(inputs: Sequence[str], outdir: str | os.PathLike) -> list[tuple[Path, str]]:
    """(file, output name) per input: files, folders (recursively) and globs, in order.

    Names are relative to a folder (or to a glob's fixed leading folders) so a
    tree is mirrored; a file named on its own keeps its name. Hidden files, and
    earlier outputs in an ``outdir`` inside a searched folder, are left out.
    """
    out_root = Path(outdir).expanduser().resolve()
    found: dict[Path, str] = {}
    for text in inputs:
        path = Path(text).expanduser()
        if path.is_file():
            files = [(path, path.name)]
        elif path.is_dir():
            files = _walk(path, sorted(path.rglob("*")), out_root)
            if not files:
                raise BatchError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {path}")
        elif any(char in text for char in "*?["):
            matches = sorted(glob.glob(os.path.expanduser(text), recursive=True))
            files = _walk(_glob_root(text), [Path(m) for m in matches], out_root)
            if not files:
                raise BatchError(f"no images match {text}")
        else:
            raise BatchError(f"input not found: {text}")
        for file, name in files:
            found.setdefault(file.resolve(), name)
    return list(found.items())


def _walk(root: Path, paths: list[Path], out_root: Path) -> list[tuple[Path, str]]:
    files = []
    nested = out_root != root.resolve() and out_root.is_relative_to(root.resolve())
    for path in paths:
        relative = path.relative_to(root) if path.is_relative_to(root) else Path(path.name)
        hidden = any(part.startswith(".") for part in relative.parts)
        if hidden or path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
            continue
        if nested and path.resolve().is_relative_to(out_root):  # earlier outputs
            continue
        files.append((path, relative.as_posix()))
    return files


def _glob_root(pattern: str) -> Path:
    """The folders before the first wildcard: ``data/**/*.tif`` → ``data``."""
    parts = Path(os.path.expanduser(pattern)).parts
    first = next(i for i, part in enumerate(parts) if any(c in part for c in "*?["))
    return Path(*parts[:first]) if first else Path()


def plan(
    inputs: Sequence[str],
    outdir: str | os.PathLike,
    style: str | None = None,
    options: dict[str, Any] | None = None,
    overwrite: bool = False,
    threads: int | None = None,
) -> tuple[list[Item], list[Item]]:
    """Validate everything and split the items into (to run, already finished).

    ``options`` are the engine's; ``stack`` left unset means per file: stacks are
    run whole, 2-D images as they are. Raises :class:`BatchError` (a ``ValueError``)
    before any work when the batch cannot run as asked.
    """
    from ..core.options import UNIVERSAL, Options
    from ..core.vgg import file_sha256

    options = dict(options or {})
    stack = options.pop("stack", None)
    parsed = Options.from_kwargs({**options, **({"stack": stack} if stack else {})})
    if threads is not None and (type(threads) is not int or not 1 <= threads <= 1024):
        raise BatchError(f"threads must be a whole number ≥ 1; got {threads!r}")
    style_sha = checkpoint_sha = None
    if parsed.method == "fast":
        from ..core.fast import CheckpointError

        if not parsed.checkpoint:
            raise BatchError("--method fast needs --checkpoint MODEL")
        if not Path(parsed.checkpoint).expanduser().is_file():
            raise CheckpointError(f"checkpoint not found: {parsed.checkpoint}")
        checkpoint = str(Path(parsed.checkpoint).expanduser().resolve())
        checkpoint_sha = file_sha256(checkpoint)
        parsed = replace(parsed, checkpoint=checkpoint)  # workers may run elsewhere
        style = None  # the model is the style
    else:
        if style is None:
            raise BatchError("--style is required (or use --method fast --checkpoint MODEL)")
        read_image(style, "style image")  # unreadable: refuse now, not once per item
        style = str(Path(style).expanduser().resolve())
        style_sha = file_sha256(style)
        parsed = replace(parsed, vgg=_vgg_path(parsed.vgg))
        if parsed.method in UNIVERSAL:  # refused now if missing; workers may run elsewhere
            from ..core.networks import SHIPPED, available_levels

            available_levels(parsed.decoders)
            if parsed.decoders not in (None, SHIPPED):
                parsed = replace(
                    parsed, decoders=str(Path(parsed.decoders).expanduser().resolve())
                )
    run_options = parsed.to_dict()
    if not stack:
        del run_options["stack"]
    out_root = Path(outdir).expanduser().resolve()
    items, owners = [], {}
    for source, name in find_inputs(inputs, out_root):
        output = out_root / name
        if output in owners:
            raise BatchError(
                f"{owners[output]} and {source} would both be written to {output}; "
                "put them in separate folders or name them differently"
            )
        owners[output] = source
        items.append((source, name, output))
    sources = {source for source, _, _ in items}
    for output in owners:
        if output in sources:
            raise BatchError(f"output {output} would overwrite an input; choose another OUTDIR")
    todo, finished = [], []
    for source, name, output in items:
        recipe = {
            "options": {**run_options, "stack": stack or "auto"},
            "content_sha256": file_sha256(str(source)),
            "style_sha256": style_sha,
            "checkpoint_sha256": checkpoint_sha,
        }
        recipe = json.loads(json.dumps(recipe))  # as a sidecar reads back
        item = Item(name, str(source), str(output), style, run_options, recipe, threads)
        (finished if not overwrite and is_finished(item) else todo).append(item)
    return todo, finished


def _vgg_path(spec: str) -> str:
    """A VGG19 file as an absolute path (``caffe:`` kept); refused now if missing."""
    from ..core.vgg import SOURCES, VGGError

    spec = spec.strip()
    if spec in SOURCES:
        return spec
    prefix = "caffe:" if spec.startswith("caffe:") else ""
    path = Path(spec.removeprefix(prefix)).expanduser()
    if not path.is_file():
        raise VGGError(f"VGG19 file not found: {path}")
    return prefix + str(path.resolve())


def is_finished(item: Item) -> bool:
    """The image exists and its sidecar says it was made, completely, from ``item.recipe``."""
    output, record_path = Path(item.output), sidecar(item.output)
    if not output.is_file() or not record_path.is_file():
        return False
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(record, dict):
        return False
    batch = record.get("batch")
    return (
        record.get("status") == "done"
        and isinstance(batch, dict)
        and _in_current_names(batch.get("recipe")) == item.recipe
        and batch.get("output_bytes") == output.stat().st_size
    )


def _in_current_names(recipe: object) -> object:
    """A sidecar's recipe with options renamed since it was written under today's names,
    so an upgrade does not redo a finished item."""
    if not isinstance(recipe, dict) or not isinstance(recipe.get("options"), dict):
        return recipe
    from ..core.options import current_names

    return recipe | {"options": current_names(recipe["options"], warn=False)}


def options_with_recipe(recipe: str | os.PathLike | None, flags: dict[str, Any]) -> dict[str, Any]:
    """A recipe's options with ``flags`` (given explicitly) on top.

    A recipe's ``stack`` is not used: batch runs stacks whole and 2-D images as
    they are, unless ``stack`` is among the flags. Nor are its ``threads``: a batch
    shares the cores among its workers (``--threads``).
    """
    if recipe is None:
        return dict(flags)
    from ..core.provenance import Recipe, read_recipe

    try:
        parsed = read_recipe(recipe)
    except ValueError as exc:
        raise BatchError(str(exc)) from None
    options = dict(parsed.options)
    options.pop("stack", None)
    return Recipe(options).merged(flags)


@contextlib.contextmanager
def execute(
    todo: Sequence[Item],
    scheduler: str | None = None,
    workers: int | None = None,
    client: Any = None,
) -> Iterator[Iterator[Result]]:
    """Results as items finish: in this process, or on Dask (``client``, a cluster at
    ``scheduler``, or ``workers`` local processes started and stopped here)."""
    if not todo:
        yield iter(())
    elif client is not None or scheduler is not None or workers is not None:
        from .cluster import open_client, run_on_dask

        with contextlib.ExitStack() as stack:
            if client is None:
                client = stack.enter_context(open_client(scheduler, workers))
            results = run_on_dask(client, todo)
            try:
                yield results
            finally:
                results.close()  # cancels what has not run, before the client goes
    else:
        from ..core import devices

        devices.resolve_device(todo[0].options["device"])  # unusable: a usage error
        yield (run_item(item) for item in todo)


def engine_cache_stats() -> dict[str, int]:
    """Loads this process made (cache misses): run with ``client.run`` on Dask workers."""
    from ..core import fast, losses, vgg

    return {
        "pid": os.getpid(),
        "checkpoint_loads": fast.read_checkpoint.cache_info().misses,
        "vgg_loads": vgg.read_vgg_file.cache_info().misses,
        "style_target_builds": losses.style_target_builds(),
    }


def run_batch(
    inputs: Sequence[str],
    outdir: str | os.PathLike,
    style: str | None = None,
    *,
    overwrite: bool = False,
    threads: int | None = None,
    client: Any = None,
    **options: Any,
) -> Report:
    """The Python form of ``napari-nst batch``: in this process, or on ``client`` (a
    ``dask.distributed.Client``). Failed items are in ``report.failed``."""
    todo, finished = plan(inputs, outdir, style, options, overwrite, threads)
    with execute(todo, client=client) as results:
        return Report(list(results), [item.name for item in finished])

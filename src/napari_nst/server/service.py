"""The server without HTTP: accept a submission, queue it, cancel it, run the queues.

The web app (``app``) and the JSON-lines front end (``stdio``) both drive one
:class:`Service`, so a job is validated, stored and run the same way whichever way
it came.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..batch.plan import IMAGE_SUFFIXES
from .events import Hub
from .jobs import FINISHED, Job, JobStore, fingerprint
from .runner import PREVIEW_INTERVAL, Runner
from .security import Policy, Refused, check_job_id, confine_files, digest, new_token

MAX_STYLES = 8


@dataclass(frozen=True)
class Upload:
    """One uploaded file: the name the client gave it (for its suffix) and its bytes."""

    filename: str
    data: bytes


@dataclass(frozen=True)
class Accepted:
    job: Job
    new: bool
    key: str | None
    """The client's key, when the server made one for it (returned once)."""


class Service:
    def __init__(
        self,
        data: str | Path,
        policy: Policy | None = None,
        threads: int | None = None,
        preview_interval: float = PREVIEW_INTERVAL,
        dask_client: Any = None,
    ) -> None:
        """``dask_client``: run the jobs on that cluster (see :mod:`.on_dask`)."""
        self.store = JobStore(data)
        self.dask_client = dask_client
        self.policy = policy or Policy()
        self.hub = Hub()
        self.threads, self.preview_interval = threads, preview_interval
        self.runners: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._started = False

    # -- life -----------------------------------------------------------------------
    def start(self) -> Service:
        with self._lock:
            self._started = True
            for device in list(self.store.queues):
                self._runner(device)
        return self

    def stop(self) -> None:
        """Stop the runners; a running job goes back to the queue (run at next start)."""
        with self._lock:
            runners = list(self.runners.values())
            self._started = False
        self.store.close()
        for runner in runners:
            runner.stop()

    def _runner(self, device: str) -> None:
        if not self._started or device in self.runners:
            return
        if self.dask_client is not None:
            from .on_dask import DEVICE, DaskRunner

            if device == DEVICE:
                self.runners[device] = DaskRunner(
                    self.store, self.hub, self.dask_client, self.threads
                ).start()
            return  # queued here before the server ran on a cluster: waits for that
        runner = Runner(self.store, self.hub, device, self.threads, self.preview_interval)
        self.runners[device] = runner.start()

    # -- submitting -------------------------------------------------------------------
    def submit(
        self,
        content: Upload,
        styles: list[Upload],
        options: object,
        recipe: object = None,
        labels: Upload | None = None,
        job_id: str | None = None,
        key: str | None = None,
        front: bool = False,
    ) -> Accepted:
        """Validate a submission and queue it; raises :class:`Refused` (4xx) otherwise.

        The same ``job_id``, or the same options, recipe and input bytes, give back the
        job already there (idempotent); a taken ``job_id`` with other inputs is a 409.
        """
        if job_id is not None:
            check_job_id(job_id)
        merged, recipe = self._options(options, recipe)
        device = _device(merged) if self.dask_client is None else "dask"
        if self.dask_client is not None and (len(styles) > 1 or labels is not None):
            raise Refused(400, "on a Dask cluster a job takes one style image and no labels")
        if len(styles) > MAX_STYLES:
            raise Refused(400, f"at most {MAX_STYLES} style images")
        suffix = _suffix(content, "content")
        uploads = [("content", content), *(("style", s) for s in styles)]
        uploads += [("labels", labels)] if labels is not None else []
        content_name = f"content{suffix}"
        print_ = fingerprint(
            merged, recipe, [(f"{role}{_suffix(u, role)}", u.data) for role, u in uploads]
        )
        existing = self._existing(job_id, print_)
        if existing is not None:
            return Accepted(existing, False, None)
        staged = self.store.stage()
        try:
            content_path = _save(staged, content_name, content)
            style_names = []
            for index, style in enumerate(styles):
                style_names.append(f"style-{index}{_suffix(style, 'style')}")
                _save(staged, style_names[-1], style)
            label_name = None
            if labels is not None:
                label_name = f"labels{_suffix(labels, 'labels')}"
                _save(staged, label_name, labels)
            self._validate(staged, content_path, style_names, label_name, merged, recipe)
            made = new_token() if not key else None
            job = Job(
                id=job_id or self.store.new_id(print_),
                fingerprint=print_,
                options=merged,
                recipe=recipe,
                content=content_name,
                styles=style_names,
                labels=label_name,
                client=digest(key or made or ""),
                device=device,
                seq=0,
                front=front,
            )
            try:
                job, new = self.store.commit(staged, job, self._queued)
            except KeyError:
                raise Refused(409, f"job id {job_id!r} is taken by another submission") from None
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        if new:
            with self._lock:
                self._runner(job.device)
        return Accepted(job, new, made if new else None)

    def _queued(self, job: Job) -> None:
        event = {"event": "queued", "id": job.id, "position": self.store.position(job)}
        self.hub.publish(event, job.client)

    def _existing(self, job_id: str | None, print_: str) -> Job | None:
        try:
            return self.store.find(job_id, print_)
        except KeyError:
            raise Refused(409, f"job id {job_id!r} is taken by another submission") from None

    def _options(self, options: object, recipe: object) -> tuple[dict[str, Any], Any]:
        """The options in force (a recipe's under the explicit ones), files confined,
        validated as any run's; and the recipe as data (for its threads and steering)."""
        from ..core.options import Options
        from ..core.provenance import parse_recipe

        options = _json_object(options, "options")
        if recipe is not None:
            recipe = _json_object(recipe, "recipe")
        if "labels" in options:
            raise Refused(400, "labels come as a file (form field 'labels'), not an option")
        try:
            merged = parse_recipe(recipe).merged(options) if recipe is not None else options
            merged = confine_files(merged, self.store.models)
            Options.from_kwargs(merged)
        except Refused:
            raise
        except ValueError as exc:
            raise Refused(400, _one_line(exc)) from None
        return merged, recipe

    def _validate(
        self,
        folder: Path,
        content: Path,
        styles: list[str],
        labels: str | None,
        options: dict[str, Any],
        recipe: Any,
    ) -> None:
        """Decode the images and prepare the run (without running it): what would fail
        at once fails now, with a 400 (413 for too many pixels)."""
        from ..core import prepare
        from ..core.files import read_image

        try:
            image = read_image(content, "content")
            self._pixels(image, "content")
            style_images = [read_image(folder / name, "style") for name in styles]
            for style in style_images:
                self._pixels(style, "style")
            extra = dict(options)
            if labels is not None:
                extra["labels"] = read_image(folder / labels, "labels")
            style = style_images[0] if len(style_images) == 1 else (style_images or None)
            prepare(image, style, recipe=recipe, **extra)
        except Refused:
            raise
        except ValueError as exc:
            raise Refused(400, _one_line(exc).replace(str(folder) + "/", "")) from None

    def _pixels(self, image: Any, role: str) -> None:
        if image.size > self.policy.max_pixels:
            raise Refused(
                413, f"{role} has {image.size} values; the limit is {self.policy.max_pixels}"
            )

    # -- cancelling -------------------------------------------------------------------
    def cancel(self, job_id: str, key: str | None, wait: float = 30.0) -> Job:
        job = self._owned(self.job(job_id), key)
        if job.status in FINISHED:
            raise Refused(409, f"job {job_id} is already {job.status}")
        if not self.store.cancel_queued(job):
            job.cancel_requested = True  # a runner taking it right now sees this
            runner = self.runners.get(job.device)
            if runner is not None:
                runner.cancel(job)
        else:
            self.hub.publish(
                {"event": "cancelled", "id": job.id, "message": job.message}, job.client
            )
        with self.store.changed:
            self.store.changed.wait_for(lambda: job.status in FINISHED, wait)
        return job

    def hold(self, job_id: str, key: str | None, paused: bool) -> Job:
        """Pause or resume a running job (only its submitter may)."""
        job = self._owned(self.job(job_id), key)
        runner = self.runners.get(job.device)
        if job.status != "running" or runner is None:
            raise Refused(409, f"job {job_id} is {job.status}: only a running job pauses")
        if not runner.hold(job, paused):
            raise Refused(409, f"job {job_id} is not running on this server's engine")
        return job

    def delete(self, job_id: str, key: str | None) -> None:
        """Delete a finished job and its files (only its submitter may)."""
        job = self._owned(self.job(job_id), key)
        try:
            self.store.remove(job)
        except ValueError:
            raise Refused(409, f"job {job_id} is {job.status}: cancel it first") from None

    def _owned(self, job: Job, key: str | None) -> Job:
        if key is None or digest(key) != job.client:
            raise Refused(403, "only the client that submitted a job can do that (X-NST-Key)")
        return job

    def job(self, job_id: str) -> Job:
        job = self.store.get(job_id)
        if job is None:
            raise Refused(404, f"no job {job_id!r}")
        return job


def _json_object(value: object, name: str) -> dict[str, Any]:
    if isinstance(value, str | bytes):
        try:
            value = json.loads(value or "{}")
        except ValueError as exc:
            raise Refused(400, f"{name} is not valid JSON: {exc}") from None
    if not isinstance(value, Mapping):
        raise Refused(400, f"{name} must be a JSON object")
    return dict(value)


def _suffix(upload: Upload, role: str) -> str:
    suffix = Path(upload.filename or "").suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        known = ", ".join(sorted(IMAGE_SUFFIXES))
        raise Refused(400, f"{role} must be an image file named with one of: {known}")
    return suffix


def _save(folder: Path, name: str, upload: Upload) -> Path:
    path = folder / name
    path.write_bytes(upload.data)
    return path


def _device(options: Mapping[str, Any]) -> str:
    """The device a job runs on, as its queue's name (``cpu``, ``cuda:0``, ``mps``)."""
    from ..core.devices import resolve_device

    try:
        device = resolve_device(options.get("device", "auto"))
    except ValueError as exc:
        raise Refused(400, _one_line(exc)) from None
    return f"cuda:{device.index or 0}" if device.type == "cuda" else device.type


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

"""``napari-nst serve --stdio``: jobs as JSON lines in, events as JSON lines out.

For a program that would rather start a process than speak HTTP. Each input line is
one job, ``{"content": PATH, "style": PATH or [PATH, ...], "output": PATH,
"options": {...}}`` (optional: ``"id"``, ``"labels"``, ``"recipe"``, ``"priority":
"front"``), or ``{"cancel": ID}``. Each output line is an event: ``queued``,
``started``, ``progress``, ``done`` (with ``output``, written with its record beside
it as ``OUTPUT.json``), ``failed``, ``cancelled``, or ``error`` for a line that could
not be accepted. Jobs run in the same queue, one at a time, as the HTTP server's. At
the end of input the remaining jobs run; the exit code is 0 when every job was done.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
from pathlib import Path
from typing import IO, Any

from ..core.files import atomic_write
from .jobs import FINISHED
from .security import Refused, new_token
from .service import Service, Upload

WAIT = 7 * 24 * 3600.0


def serve_stdio(
    lines: IO[str], out: IO[str], data: str | Path | None = None, threads: int | None = None
) -> int:
    temporary = None if data is not None else tempfile.mkdtemp(prefix="napari-nst-stdio-")
    service = Service(data or temporary, threads=threads, preview_interval=float("inf"))
    key = new_token()
    outputs: dict[str, Path] = {}
    lock = threading.RLock()

    def say(event: dict[str, Any]) -> None:
        with lock:
            out.write(json.dumps(event) + "\n")
            out.flush()

    def relay(event: dict[str, Any]) -> None:
        with lock:  # after the line's own "queued"
            if event["id"] not in outputs or event["event"] in ("preview", "queued"):
                return
            if event["event"] == "done":
                output = _deliver(service, event["id"], outputs[event["id"]])
                event = event | {"output": str(output)}
            say(event)

    service.hub.listen(relay)
    service.start()
    mine: list[str] = []
    try:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                request = json.loads(line)
                if not isinstance(request, dict):
                    raise Refused(400, "each line must be a JSON object")
                if "cancel" in request:
                    job = service.cancel(str(request["cancel"]), key, wait=0)
                    continue
                with lock:  # its events wait for this line's answer
                    accepted = _submit(service, request, key, outputs)
                    job = accepted.job
                    mine.append(job.id)
                    state = service.store.describe(job)
                    say({"event": "queued" if accepted.new else "status", **state})
                    if not accepted.new and job.status == "done":
                        relay({"event": "done", "id": job.id})
            except (Refused, ValueError, OSError) as exc:
                say({"event": "error", "line": number, "message": str(exc)})
        with service.store.changed:
            service.store.changed.wait_for(
                lambda: all(service.store.jobs[i].status in FINISHED for i in mine), WAIT
            )
    finally:
        service.stop()
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
    return 0 if all(service.store.jobs[i].status == "done" for i in mine) else 1


def _submit(service: Service, request: dict[str, Any], key: str, outputs: dict[str, Path]) -> Any:
    for name in ("content", "output"):
        if not isinstance(request.get(name), str):
            raise Refused(400, f"'{name}' must be a file path")
    styles = request.get("style") or []
    styles = [styles] if isinstance(styles, str) else styles
    output = Path(request["output"])
    if output.suffix.lower() != Path(request["content"]).suffix.lower():
        raise Refused(400, "output must have the content's format (the same suffix)")
    labels = request.get("labels")
    accepted = service.submit(
        _read(request["content"]),
        [_read(path) for path in styles],
        request.get("options") or {},
        request.get("recipe"),
        _read(labels) if labels else None,
        request.get("id"),
        key,
        request.get("priority") == "front",
    )
    outputs[accepted.job.id] = output
    return accepted


def _read(path: object) -> Upload:
    if not isinstance(path, str):
        raise Refused(400, f"expected a file path, got {path!r}")
    try:
        return Upload(Path(path).name, Path(path).read_bytes())
    except OSError as exc:
        raise Refused(400, f"cannot read {path}: {exc.strerror or exc}") from None


def _deliver(service: Service, job_id: str, output: Path) -> Path:
    """Copy a finished job's image, then its record, to where the line asked."""
    job = service.store.jobs[job_id]
    result = service.store.result(job)
    atomic_write(output, lambda temporary: shutil.copyfile(result, temporary))
    record = Path(f"{result}.json")
    atomic_write(Path(f"{output}.json"), lambda temporary: shutil.copyfile(record, temporary))
    return output

"""The HTTP and WebSocket routes (FastAPI), thin over :class:`~.service.Service`.

Every error is JSON ``{"detail": "<one line>"}`` with a 4xx code (5xx only for a bug);
no traceback ever reaches a client.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from .events import Subscriber
from .jobs import FINISHED
from .security import KEY_HEADER, Guard, Refused, digest
from .service import MAX_STYLES, Service, Upload

MEDIA_TYPES = {
    ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".tif": "image/tiff",
    ".tiff": "image/tiff", ".bmp": "image/bmp", ".gif": "image/gif", ".webp": "image/webp",
}  # fmt: skip
TERMINAL_EVENTS = ("done", "failed", "cancelled")


def create_app(service: Service) -> Any:
    """The ASGI app: the routes behind the :class:`~.security.Guard` (origin, host,
    token, body size). The service's runners run while the app does (its lifespan)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            await run_in_threadpool(service.stop)

    app = FastAPI(title="napari-nst", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.service = service

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": str(exc.detail)}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()))
        return JSONResponse({"detail": f"{where}: {first.get('msg', 'invalid')}"}, 400)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": f"internal error: {type(exc).__name__}"}, 500)

    # Status routes answer in the event loop (memory only, no waiting); file routes in
    # the thread pool.
    @app.get("/")
    async def about() -> dict[str, Any]:
        from .. import __version__

        jobs = service.store.all()
        counts = {status: sum(j.status == status for j in jobs) for status in _STATUSES}
        return {"name": "napari-nst", "version": __version__, "jobs": counts}

    @app.post("/jobs")
    async def submit(request: Request) -> JSONResponse:
        try:
            form = await request.form(max_files=MAX_STYLES + 2, max_fields=16)
        except Exception as exc:  # multipart parser errors: malformed body
            raise Refused(400, f"expected a multipart form: {exc}") from None
        content = await _upload(form.get("content"), "content")
        if content is None:
            raise Refused(400, "a 'content' file is required")
        styles = [await _upload(item, "style") for item in form.getlist("style")]
        labels = await _upload(form.get("labels"), "labels")
        front = _text(form.get("priority"), "priority") == "front"
        accepted = await run_in_threadpool(
            service.submit,
            content,
            [style for style in styles if style is not None],
            _text(form.get("options"), "options") or "{}",
            _text(form.get("recipe"), "recipe"),
            labels,
            _text(form.get("id"), "id"),
            request.headers.get(KEY_HEADER),
            front,
        )
        body = service.store.describe(accepted.job) | {"existing": not accepted.new}
        if accepted.key is not None:
            body["key"] = accepted.key
        return JSONResponse(body, status_code=201 if accepted.new else 200)

    @app.get("/jobs")
    async def jobs() -> dict[str, Any]:
        return {"jobs": [service.store.describe(job) for job in service.store.all()]}

    @app.get("/jobs/{job_id}")
    async def job(job_id: str) -> dict[str, Any]:
        return service.store.describe(service.job(job_id))

    @app.get("/jobs/{job_id}/result")
    def result(job_id: str) -> FileResponse:
        found = service.job(job_id)
        path = service.store.result(found)
        if found.status not in ("done", "cancelled") or not path.is_file():
            raise Refused(409, f"job {job_id} is {found.status}: no result")
        return FileResponse(
            path, media_type=MEDIA_TYPES.get(path.suffix, "application/octet-stream"),
            filename=f"{found.id}{path.suffix}", headers={"X-NST-Status": found.status},
        )  # fmt: skip

    @app.get("/jobs/{job_id}/record")
    def record(job_id: str) -> dict[str, Any]:
        found = service.job(job_id)
        written = service.store.record(found) if found.status in FINISHED else None
        if written is None:
            raise Refused(409, f"job {job_id} is {found.status}: no record yet")
        return written

    @app.post("/jobs/{job_id}/cancel")
    async def cancel(job_id: str, request: Request) -> dict[str, Any]:
        key = request.headers.get(KEY_HEADER)
        found = await run_in_threadpool(service.cancel, job_id, key)
        return service.store.describe(found)

    @app.post("/jobs/{job_id}/pause")
    async def pause(job_id: str, request: Request) -> dict[str, Any]:
        found = service.hold(job_id, request.headers.get(KEY_HEADER), paused=True)
        return service.store.describe(found)

    @app.post("/jobs/{job_id}/resume")
    async def resume(job_id: str, request: Request) -> dict[str, Any]:
        found = service.hold(job_id, request.headers.get(KEY_HEADER), paused=False)
        return service.store.describe(found)

    @app.delete("/jobs/{job_id}")
    async def delete(job_id: str, request: Request) -> dict[str, Any]:
        await run_in_threadpool(service.delete, job_id, request.headers.get(KEY_HEADER))
        return {"id": job_id, "deleted": True}

    @app.websocket("/jobs/{job_id}/events")
    async def job_events(socket: WebSocket, job_id: str) -> None:
        found = service.store.get(job_id)
        if found is None:
            await socket.close(code=1008, reason=f"no job {job_id!r}")
            return
        subscriber = Subscriber(asyncio.get_running_loop(), job_id, previews=_previews(socket))
        await _stream(socket, service, subscriber, [found])

    @app.websocket("/events")
    async def client_events(socket: WebSocket) -> None:
        key = socket.headers.get(KEY_HEADER) or socket.query_params.get("key")
        client = digest(key) if key else None
        subscriber = Subscriber(
            asyncio.get_running_loop(), None, client=client, previews=_previews(socket)
        )
        mine = [job for job in service.store.all() if client in (None, job.client)]
        await _stream(socket, service, subscriber, mine, until_finished=False)

    return Guard(app, service.policy)


_STATUSES = ("queued", "running", "done", "failed", "cancelled")


def _previews(socket: WebSocket) -> bool:
    return socket.query_params.get("previews", "0") in ("1", "true", "yes")


async def _stream(
    socket: WebSocket,
    service: Service,
    subscriber: Subscriber,
    jobs: list[Any],
    until_finished: bool = True,
) -> None:
    """Send where ``jobs`` stand, then their events; one job's stream ends with it."""
    service.hub.subscribe(subscriber)
    closed: asyncio.Future | None = None
    try:
        await socket.accept()
        for job in jobs:
            await socket.send_json({"event": "status", **service.store.describe(job)})
        if until_finished and jobs[0].status in FINISHED:
            await socket.send_json(_final(jobs[0]))
            await socket.close()
            return
        closed = asyncio.ensure_future(_closed(socket))
        while True:
            getting = asyncio.ensure_future(subscriber.queue.get())
            await asyncio.wait({getting, closed}, return_when=asyncio.FIRST_COMPLETED)
            if closed.done():
                getting.cancel()
                return
            event = getting.result()
            await socket.send_json(event)
            if until_finished and event["event"] in TERMINAL_EVENTS:
                await socket.close()
                return
    except (WebSocketDisconnect, RuntimeError):
        return
    finally:
        service.hub.unsubscribe(subscriber)
        if closed is not None:
            closed.cancel()


def _final(job: Any) -> dict[str, Any]:
    return {"event": job.status, "id": job.id, "message": job.message}


async def _closed(socket: WebSocket) -> None:
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            message = await socket.receive()
            if message["type"] == "websocket.disconnect":
                return


async def _upload(item: Any, role: str) -> Upload | None:
    if item is None:
        return None
    if isinstance(item, str):
        raise Refused(400, f"'{role}' must be a file, not a text field")
    return Upload(item.filename or "", await item.read())


def _text(item: Any, name: str) -> str | None:
    if item is None:
        return None
    if not isinstance(item, str):
        raise Refused(400, f"'{name}' must be a text field, not a file")
    return item

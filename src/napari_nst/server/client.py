"""A run on a napari-nst server, as a :class:`~napari_nst.core.step.Run`: the dock (or a
script) drives it exactly as a run in its own process.

The inputs are validated here first (``core.prepare``: a typo costs no upload), then
sent as lossless TIFF with the options; the server's WebSocket brings progress and
previews (8-bit, at most one a second), and the result comes back at the end in the
content's dtype, placed plane by plane as a local run's would be. ``cancel()`` (or
``send(STOP)``) cancels the job on the server, with the key it was submitted with.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Generator, Iterator
from typing import Any

import numpy as np

from ..core import prepare
from ..core.step import STOP, Step

KEY_HEADER = "X-NST-Key"
TOKEN_HEADER = "X-NST-Token"
TOKEN_VARIABLE = "NAPARI_NST_TOKEN"
"""The environment variable a client reads the server's token from (none on loopback)."""
TIMEOUT = 30.0
"""Seconds an HTTP request may take (an upload of a large stack included)."""


class ServerError(RuntimeError):
    """The server refused the job or could not run it; the message is the server's."""


class RemoteRun:
    """A style transfer run by the server at ``url``; the options as for ``prepare``."""

    # The server runs it: it can be paused (the server holds it) and cancelled, not
    # steered or continued.
    pausable = True
    steerable = False
    continuable = False
    redecodable = False

    def __init__(
        self,
        url: str,
        content: object,
        style: object = None,
        *,
        labels: object = None,
        token: str | None = None,
        **options: Any,
    ) -> None:
        local = prepare(content, style, labels=labels, **options)  # validate before upload
        self.url = url.rstrip("/")
        self.options, self.layout, self.rendering = local.options, local.layout, local.rendering
        self.shape, self.full_size = local.shape, local.full_size
        self.device = f"server {self.url}"
        self.last_iteration = 0
        self._local = local
        self._inputs = (content, style, labels)
        self._given = options
        self._token = token if token is not None else os.environ.get(TOKEN_VARIABLE)
        self._key = uuid.uuid4().hex
        self._id: str | None = None
        self._stopped = False
        self._info: dict[str, Any] = {"server": self.url}

    @property
    def planes(self) -> int:
        return len(self.layout.indices)

    def continued(self, iterations: int, size: int | None = None) -> RemoteRun:
        raise ValueError("a run on a server cannot be continued: run it again")

    def redecoded(self, alpha: float) -> np.ndarray:
        raise ValueError("only wct and adain runs can be redecoded with another alpha")

    def cancel(self) -> None:
        """Cancel the job on the server, from any thread (before it is sent: not sent)."""
        self._stopped = True
        if self._id is not None:
            with contextlib.suppress(ServerError):  # it ended meanwhile: the stream says how
                self._request("POST", f"/jobs/{self._id}/cancel")

    def hold(self, paused: bool) -> None:
        """Pause or resume the job on the server (after the step in progress there)."""
        if self._id is not None:
            with contextlib.suppress(ServerError):  # it ended meanwhile: the stream says how
                self._request("POST", f"/jobs/{self._id}/{'pause' if paused else 'resume'}")

    def info(self) -> dict[str, Any]:
        """The server's record of the run (device, precision…) once it ran, and the server."""
        return dict(self._info)

    def steps(self) -> Generator[Step, Any, None]:
        start = time.perf_counter()
        self._id = self._submit()
        if self._stopped:  # cancelled while the inputs were being sent
            self.cancel()
        total = self.options.iterations * self.planes
        events = self._events()
        try:
            for event in events:
                kind = event.get("event")
                if kind == "progress":
                    total = int(event.get("total") or total)
                    command = yield self._progress(event, total, start)
                    if command == STOP:
                        self.cancel()
                elif kind == "preview":
                    command = yield self._preview(event, total, start)
                    if command == STOP:
                        self.cancel()
                elif kind == "done":
                    yield from self._result(total, start)
                    return
                elif kind == "failed":
                    raise ServerError(str(event.get("message") or "the run failed"))
                elif kind == "cancelled":
                    yield Step(self.last_iteration, total, {}, time.perf_counter() - start,
                               done=True, cancelled=True, planes=self.planes)  # fmt: skip
                    return
        finally:
            events.close()

    # -- the protocol ---------------------------------------------------------------

    def _submit(self) -> str:
        content, style, labels = self._inputs
        styles = style if isinstance(style, list | tuple) else [style]
        files = [("content", "content.tif", _tiff(content))]
        files += [("style", f"style{n}.tif", _tiff(s)) for n, s in enumerate(styles)]
        if labels is not None:
            files.append(("labels", "labels.tif", _tiff(labels)))
        # The options as given (validated above): the server fills in the same defaults.
        fields = {"options": json.dumps(self._given, default=_plain)}
        answer = self._request("POST", "/jobs", _multipart(fields, files))
        return str(answer["id"])

    def _events(self) -> Iterator[dict[str, Any]]:
        try:
            from websockets.sync.client import connect
        except ImportError:  # pragma: no cover - the server extra brings it
            raise ServerError(
                "running on a server needs the websockets package: "
                "pip install 'napari-nst[server]'"
            ) from None
        parts = urllib.parse.urlsplit(self.url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        query = urllib.parse.urlencode({"previews": 1, "key": self._key})
        address = f"{scheme}://{parts.netloc}{parts.path}/jobs/{self._id}/events?{query}"
        headers = {KEY_HEADER: self._key} | ({TOKEN_HEADER: self._token} if self._token else {})
        try:
            with connect(address, additional_headers=headers, open_timeout=TIMEOUT) as socket:
                for message in socket:
                    event = json.loads(message)
                    yield event
                    if event.get("event") in ("done", "failed", "cancelled"):
                        return
        except OSError as exc:
            raise ServerError(f"lost the server at {self.url}: {exc}") from None

    def _progress(self, event: dict[str, Any], total: int, start: float) -> Step:
        self.last_iteration = int(event.get("iteration") or 0)
        return Step(
            self.last_iteration, total, dict(event.get("losses") or {}),
            time.perf_counter() - start, plane=int(event.get("plane") or 0),
            planes=self.planes, remaining=event.get("remaining"),
        )  # fmt: skip

    def _preview(self, event: dict[str, Any], total: int, start: float) -> Step:
        import imageio.v3 as iio

        image = iio.imread(io.BytesIO(base64.b64decode(event["png"])))
        index = tuple(event.get("index") or ())
        return Step(
            int(event.get("iteration") or self.last_iteration), total, {},
            time.perf_counter() - start, image=self._in_result_dtype(image), index=index,
            plane=self.layout.indices.index(index) if index in self.layout.indices else 0,
            planes=self.planes,
        )  # fmt: skip

    def _result(self, total: int, start: float) -> Iterator[Step]:
        """The result, one plane a step, and the server's record."""
        data = self._request("GET", f"/jobs/{self._id}/result", raw=True)
        result = _decoded(data)
        record = self._request("GET", f"/jobs/{self._id}/record")
        if isinstance(record, dict):  # how it ran there (device, precision, VGG19…)
            ran = {k: v for k, v in record.items() if k not in ("steps", "params", "server")}
            self._info = ran | {"server": self.url, "server_job": record.get("server")}
        losses = dict(record.get("losses") or {}) if isinstance(record, dict) else {}
        elapsed = time.perf_counter() - start
        if result.shape != tuple(self.rendering.shape):
            raise ServerError(
                f"the server's result has shape {result.shape}, not {tuple(self.rendering.shape)}"
            )
        for number, index in enumerate(self.layout.indices):
            plane = result[index] if index else result
            last = number == self.planes - 1
            yield Step(
                total, total, losses, elapsed, image=plane, done=last, index=index,
                plane=number, planes=self.planes, plane_done=True,
            )  # fmt: skip

    def _in_result_dtype(self, image: np.ndarray) -> np.ndarray:
        """An 8-bit preview in the result's dtype and range (the final result is exact)."""
        unit = image.astype(np.float32) / 255.0
        if unit.ndim == 3 and not self.layout.colour and self.rendering.kind == "gray":
            unit = unit[..., :3].mean(-1)
        dtype = np.dtype(self.rendering.dtype)
        if dtype.kind == "f":
            return unit.astype(dtype)
        low, high = self.layout.window if self.rendering.kind == "gray" else (0, 255)
        if dtype == np.uint8 and self.rendering.kind != "gray":
            low, high = 0, 255
        return np.rint(low + unit * (high - low)).astype(dtype)

    def _request(self, method: str, path: str, body: Any = None, raw: bool = False) -> Any:
        headers = {KEY_HEADER: self._key}
        if self._token:
            headers[TOKEN_HEADER] = self._token
        data = None
        if body is not None:
            data, content_type = body
            headers["Content-Type"] = content_type
        request = urllib.request.Request(self.url + path, data, headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:
                payload = answer.read()
        except urllib.error.HTTPError as exc:
            detail = _detail(exc.read()) or exc.reason
            raise ServerError(f"the server at {self.url} refused: {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServerError(
                f"cannot reach a napari-nst server at {self.url}: {reason}"
            ) from None
        return payload if raw else json.loads(payload or b"null")


def _plain(value: object) -> object:
    """NumPy numbers and arrays (contrast limits from a layer, say) as JSON values."""
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not an option value")


def _decoded(data: bytes) -> np.ndarray:
    """An image file's bytes as an array: every page of a TIFF (a stack), else the image."""
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        import tifffile

        return np.asarray(tifffile.imread(io.BytesIO(data)))
    import imageio.v3 as iio

    return np.asarray(iio.imread(io.BytesIO(data)))


def _tiff(array: object) -> bytes:
    """An array as lossless TIFF bytes (any dtype, any number of planes)."""
    import tifffile

    buffer = io.BytesIO()
    data = np.ascontiguousarray(np.asarray(array))
    photometric = "rgb" if data.ndim >= 3 and data.shape[-1] in (3, 4) else "minisblack"
    tifffile.imwrite(buffer, data, photometric=photometric)
    return buffer.getvalue()


def _multipart(fields: dict[str, str], files: list[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value.encode()
            + b"\r\n"
        )
    for name, filename, data in files:
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: image/tiff\r\n\r\n'
        )
        parts.append(head.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _detail(body: bytes) -> str:
    try:
        return str(json.loads(body).get("detail", "")).strip()
    except (ValueError, AttributeError):
        return body.decode(errors="replace").strip()[:200]

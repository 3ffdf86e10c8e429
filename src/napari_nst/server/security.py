"""What keeps the server safe by default: who may call it, from where, with how much.

* bound to loopback unless told otherwise; any other address needs a token (given or
  generated, printed at start) and prints a warning;
* a request whose ``Origin`` is not the server itself (a web page in a browser) is
  refused, and on loopback so is a foreign ``Host`` (DNS rebinding);
* request bodies have a size limit and decoded images a pixel limit;
* options that name files may only name files in the data folder's ``models/``; the
  server never opens a path a client wrote anywhere else.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}
DEFAULT_MAX_UPLOAD = 64 * 2**20
DEFAULT_MAX_PIXELS = 64_000_000
TOKEN_HEADER = "x-nst-token"
KEY_HEADER = "x-nst-key"
"""The submitting client's key: its jobs can only be cancelled with it."""

FILE_OPTIONS = ("checkpoint", "weights", "vgg", "decoders")
"""Options whose value may be a file: restricted to the data folder's ``models/``."""
NAMED_SOURCES = ("auto", "bundled", "torchvision", "caffe", "random", "shipped")
"""VGG19 sources and decoder sets that are names, not files (``core.vgg.SOURCES``,
``core.networks.SHIPPED``; kept here so that checking a request does not import torch)."""

JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class Refused(ValueError):
    """A request the server will not serve; ``status`` is its HTTP code."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    return secrets.token_urlsafe(24)


def digest(secret: str) -> str:
    """What is stored of a client's key (never the key itself)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def same_secret(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def exposure_warning(host: str, port: int) -> str:
    """Printed when the server listens beyond this machine (as GIMP's script server does)."""
    return (
        f"WARNING: napari-nst is serving on {host}:{port}, which other machines can reach. "
        "Anyone who can reach this port and holds the token can run jobs on this machine "
        "and read every job's images and records. There is no encryption: the token and "
        "the images cross the network in clear text. Use this only on a network you "
        "trust, and only while you need it."
    )


@dataclass(frozen=True)
class Policy:
    """The rules one server applies to every request."""

    loopback: bool = True
    token: str | None = None
    max_upload: int = DEFAULT_MAX_UPLOAD
    max_pixels: int = DEFAULT_MAX_PIXELS
    origins: frozenset[str] = field(default_factory=frozenset)
    """Extra origins allowed besides the server's own (``scheme://host:port``)."""

    def check(self, headers: Mapping[str, str], query: str = "") -> None:
        """Raise :class:`Refused` for a request this server must not serve."""
        host = headers.get("host", "")
        if self.loopback and _hostname(host) not in LOOPBACK_NAMES:
            raise Refused(403, f"refused: Host {host!r} is not this machine's loopback name")
        origin = headers.get("origin")
        if origin is not None and origin not in self.origins:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https", "ws", "wss") or parts.netloc != host:
                raise Refused(403, f"refused: requests from origin {origin!r} are not allowed")
        if self.token is not None:
            given = headers.get(TOKEN_HEADER)
            authorization = headers.get("authorization", "")
            if authorization.lower().startswith("bearer "):
                given = authorization[7:].strip()
            if given is None:
                given = (parse_qs(query).get("token") or [None])[0]
            if not same_secret(given, self.token):
                raise Refused(401, "a valid token is required (header X-NST-Token)")


def _hostname(host: str) -> str:
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def check_job_id(job_id: str) -> str:
    if not JOB_ID.fullmatch(job_id):
        raise Refused(
            400,
            "id must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return job_id


def confine_files(options: dict[str, Any], models: Path) -> dict[str, Any]:
    """``options`` with every file they name resolved inside ``models`` (a new dict).

    A name is relative to ``models``; absolute paths, ``..`` and links that lead
    outside are refused, as is a path in any other option (no option but
    :data:`FILE_OPTIONS` names a file, so a path elsewhere is a trick or a mistake).
    """
    confined = dict(options)
    for name, value in options.items():
        if name not in FILE_OPTIONS:
            if isinstance(value, str) and ("/" in value or "\\" in value):
                raise Refused(400, f"option {name!r} may not name a path")
            continue
        if value is None or (name != "checkpoint" and value in NAMED_SOURCES):
            continue
        if not isinstance(value, str):
            raise Refused(400, f"option {name!r} must be a file name (in the models folder)")
        prefix = "caffe:" if name != "checkpoint" and value.startswith("caffe:") else ""
        confined[name] = prefix + str(model_file(value.removeprefix(prefix), models, name))
    return confined


def model_file(name: str, models: Path, option: str = "file") -> Path:
    """``name`` in ``models``; refused when it is absolute or leads outside."""
    relative = Path(name)
    if not name or relative.is_absolute() or "\\" in name or ".." in relative.parts:
        raise Refused(400, f"{option} must name a file in the server's models folder: {name!r}")
    root = models.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise Refused(400, f"{option} leads outside the server's models folder: {name!r}")
    if not (path.is_file() or (option == "decoders" and path.is_dir())):
        raise Refused(400, f"{option} {name!r} is not in the server's models folder")
    return path


ASGIApp = Callable[[dict[str, Any], Callable[[], Awaitable[dict]], Callable], Awaitable[None]]


class Guard:
    """ASGI middleware: :meth:`Policy.check` on every request and WebSocket, and the
    body size limit (413), before anything else reads the request."""

    def __init__(self, app: ASGIApp, policy: Policy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            self.policy.check(headers, scope.get("query_string", b"").decode("latin-1"))
        except Refused as exc:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008, "reason": str(exc)})
                return
            await _answer(send, exc.status, str(exc))
            return
        if scope["type"] == "http":
            limit = self.policy.max_upload
            declared = headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                await _answer(send, 413, f"request body over the {_mib(limit)} limit")
                return
            body, more = bytearray(), True
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                body += message.get("body", b"")
                more = message.get("more_body", False)
                if len(body) > limit:
                    await _answer(send, 413, f"request body over the {_mib(limit)} limit")
                    return
            receive = _replay(bytes(body), receive)
        await self.app(scope, receive, send)


def _replay(body: bytes, receive: Any) -> Any:
    sent = False

    async def replayed() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _answer(send: Any, status: int, message: str) -> None:
    import json

    payload = json.dumps({"detail": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def _mib(count: int) -> str:
    return f"{count / 2**20:g} MiB"

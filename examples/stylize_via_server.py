"""Stylise an image with a running ``napari-nst serve``, using only the standard library.

This is what a GIMP or Krita Python plug-in would do: no napari, no torch, no
third-party package on the client side. Start the server first (``napari-nst serve``)::

    python examples/stylize_via_server.py photo.png painting.jpg -o out.png \\
        --option iterations=200 --option style_strength=1

The job is submitted with a key of our own (X-NST-Key) so that Ctrl-C can cancel it;
progress is followed by polling ``GET /jobs/ID``; the result comes back in the
content's format.
"""

from __future__ import annotations

import argparse
import json
import mimetypes
import secrets
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

SERVER = "http://127.0.0.1:8765"


class ServerError(RuntimeError):
    """The server refused a request or the job failed; the message is the server's."""


def stylize_via_server(
    content: str | Path,
    styles: list[str | Path],
    output: str | Path,
    options: dict[str, Any] | None = None,
    server: str = SERVER,
    token: str | None = None,
    job_id: str | None = None,
    poll: float = 0.5,
    timeout: float = 3600.0,
    on_progress: Any = None,
) -> dict[str, Any]:
    """Submit, follow until the job ends, write the result to ``output``; returns the
    job's last state. Raises :class:`ServerError` when the job fails or is refused."""
    key = secrets.token_urlsafe(16)
    headers = {"X-NST-Key": key} | ({"X-NST-Token": token} if token else {})
    fields = {"options": json.dumps(options or {})} | ({"id": job_id} if job_id else {})
    files = [("content", Path(content))] + [("style", Path(style)) for style in styles]
    body, boundary = _multipart(fields, files)
    headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
    job = _call(f"{server}/jobs", headers, body)
    deadline = time.monotonic() + timeout
    try:
        while job["status"] in ("queued", "running"):
            if time.monotonic() > deadline:
                raise ServerError(f"job {job['id']} did not finish within {timeout:g} s")
            time.sleep(poll)  # a client polling at its own pace
            job = _call(f"{server}/jobs/{job['id']}", headers)
            if on_progress is not None:
                on_progress(job)
    except KeyboardInterrupt:
        _call(f"{server}/jobs/{job['id']}/cancel", headers, b"")
        raise
    if job["status"] != "done":
        raise ServerError(f"job {job['id']} {job['status']}: {job.get('message', '')}")
    image = _call(f"{server}/jobs/{job['id']}/result", headers, raw=True)
    Path(output).write_bytes(image)
    return job


def _multipart(fields: dict[str, str], files: list[tuple[str, Path]]) -> tuple[bytes, str]:
    boundary = secrets.token_hex(16)
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value.encode()
            + b"\r\n"
        )
    for name, path in files:
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{path.name}"\r\nContent-Type: {kind}\r\n\r\n'
        )
        parts.append(head.encode() + path.read_bytes() + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), boundary


def _call(url: str, headers: dict[str, str], data: bytes | None = None, raw: bool = False) -> Any:
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            payload = answer.read()
    except urllib.error.HTTPError as exc:
        try:
            reason = json.loads(exc.read()).get("detail", exc.reason)
        except ValueError:
            reason = exc.reason
        raise ServerError(f"{exc.code}: {reason}") from None
    return payload if raw else json.loads(payload)


def _option(text: str) -> tuple[str, Any]:
    name, _, value = text.partition("=")
    try:
        return name.strip(), json.loads(value)
    except ValueError:
        return name.strip(), value  # a plain word: 'fast', 'random', 'cpu'


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("content")
    parser.add_argument("style", nargs="*")
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--server", default=SERVER)
    parser.add_argument("--token", help="the server's token, when it has one")
    parser.add_argument("--id", help="a job id of our choosing (resubmitting it is harmless)")
    parser.add_argument(
        "--option", action="append", default=[], metavar="NAME=VALUE",
        help="an engine option, as in the records (iterations=200, vgg=random)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    options = dict(_option(text) for text in args.option)

    def show(job: dict[str, Any]) -> None:
        if job.get("status") == "queued":
            print(f"\rqueued, {job.get('position')} ahead", end="", file=sys.stderr)
        elif "iteration" in job:
            print(f"\r{job['iteration']}/{job['total']}", end="", file=sys.stderr)

    try:
        stylize_via_server(
            args.content, args.style, args.output, options, args.server, args.token, args.id,
            on_progress=show,
        )  # fmt: skip
    except (ServerError, OSError) as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ncancelled", file=sys.stderr)
        return 130
    print(f"\nwrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

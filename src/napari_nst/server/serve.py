"""``napari-nst serve``: the job server on uvicorn (or ``--stdio``: JSON lines)."""

from __future__ import annotations

import contextlib
import socket
import sys
from pathlib import Path
from typing import Any

from .security import DEFAULT_MAX_UPLOAD, Policy, exposure_warning, is_loopback, new_token

DEFAULT_PORT = 8765


def default_data() -> Path:
    """Where jobs live unless ``--data`` says otherwise: the user's data folder."""
    import platformdirs

    return Path(platformdirs.user_data_dir("napari-nst")) / "server"


def serve(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    data: str | Path | None = None,
    token: str | None = None,
    max_upload: int = DEFAULT_MAX_UPLOAD,
    threads: int | None = None,
    origins: tuple[str, ...] = (),
    scheduler: str | None = None,
    workers: int | None = None,
    out: Any = sys.stderr,
) -> int:
    """Serve until interrupted (Ctrl-C or SIGTERM: the running job is queued again).

    ``scheduler`` (a Dask scheduler's address) or ``workers`` (local Dask worker
    processes) run the jobs on that cluster instead of in this process.
    """
    if scheduler is None and workers is None:
        return _serve(host, port, data, token, max_upload, threads, origins, None, out)
    from ..batch.cluster import open_client

    with open_client(scheduler, workers) as client:
        return _serve(host, port, data, token, max_upload, threads, origins, client, out)


def _serve(
    host: str,
    port: int,
    data: str | Path | None,
    token: str | None,
    max_upload: int,
    threads: int | None,
    origins: tuple[str, ...],
    client: Any,
    out: Any,
) -> int:
    import uvicorn

    from .app import create_app
    from .service import Service

    policy = make_policy(host, token, max_upload, origins)
    service = Service(data or default_data(), policy, threads, dask_client=client)
    listener = _bind(host, port)
    for line in announce(host, listener.getsockname()[1], policy, service.store.data):
        print(f"napari-nst: {line}", file=out)
    out.flush()
    config = uvicorn.Config(
        create_app(service), log_level="warning", ws="websockets-sansio",
        timeout_graceful_shutdown=5,
    )  # fmt: skip
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn stops cleanly, then passes it on
        uvicorn.Server(config).run(sockets=[listener])
    print("napari-nst: stopped; queued jobs wait in the data folder", file=out)
    return 0


def make_policy(
    host: str, token: str | None, max_upload: int = DEFAULT_MAX_UPLOAD, origins: tuple = ()
) -> Policy:
    """Loopback needs nothing; any other address needs a token (one is made up)."""
    loopback = is_loopback(host)
    if token is None and not loopback:
        token = new_token()
    return Policy(loopback, token, max_upload, origins=frozenset(origins))


def announce(host: str, port: int, policy: Policy, data: Path) -> list[str]:
    """What ``serve`` prints at start: the warning beyond loopback, the address, the token."""
    shown = f"[{host}]" if ":" in host else host
    lines = [] if policy.loopback else [exposure_warning(host, port)]
    lines.append(f"serving on http://{shown}:{port} (jobs in {data})")
    if policy.token is not None:
        lines.append(f"token: {policy.token}  (send it as the header X-NST-Token)")
    return lines


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as exc:
        listener.close()
        raise ValueError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    listener.listen(128)
    return listener

"""``napari-nst serve``: the job server on uvicorn (or ``--stdio``: JSON lines)."""

from __future__ import annotations

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
    out: Any = sys.stderr,
) -> int:
    """Serve until interrupted (Ctrl-C or SIGTERM: the running job is queued again)."""
    import uvicorn

    from .app import create_app
    from .service import Service

    loopback = is_loopback(host)
    if token is None and not loopback:
        token = new_token()
    policy = Policy(loopback, token, max_upload, origins=frozenset(origins))
    service = Service(data or default_data(), policy, threads)
    listener = _bind(host, port)
    bound = listener.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    if not loopback:
        print(f"napari-nst: {exposure_warning(host, bound)}", file=out)
    print(
        f"napari-nst: serving on http://{shown}:{bound} (jobs in {service.store.data})", file=out
    )
    if token is not None:
        print(f"napari-nst: token: {token}  (send it as the header X-NST-Token)", file=out)
    out.flush()
    config = uvicorn.Config(
        create_app(service), log_level="warning", ws="websockets-sansio",
        timeout_graceful_shutdown=5,
    )  # fmt: skip
    uvicorn.Server(config).run(sockets=[listener])
    return 0


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

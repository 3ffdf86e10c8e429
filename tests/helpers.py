"""Helpers shared by the tests: one copy each. Test modules import from here, never from
one another (nor from ``conftest``).

- Widget runs: ``press_and_wait`` (press Run, or another button, and wait until the run
  ends: event-based, up to ``WAIT_MS``), ``run_to_end`` (the same, returning the one
  layer the run added), ``outputs`` (a viewer's output layers), ``shown`` (whether a
  dock control is visible), ``iteration`` / ``weight_changes`` / ``reweighted`` (what
  the dock's session has recorded so far).
- The command line: ``one_line_error`` (the one-line error on stderr), ``stylize_logged``
  (a ``stylize`` with a JSON log, read back), ``CLI_TINY`` / ``CLI_CPU`` (flags of a
  tiny run).
- The engine: ``TINY`` / ``TINY_SEEDED`` / ``TINY_UNSIZED`` (options of a tiny run),
  ``steered_run`` (a run steered and continued as a user would), ``smooth_painting``,
  ``cpu_vendor`` (who made this CPU: results computed elsewhere match bit for bit only
  on the same maker's).
- Weights and models: ``vgg19_state_dict``, ``transformer_state``.
- Batches: ``batch_photo``, ``batch_inputs``, ``read_image``, ``written_images``,
  ``sidecars``.
- A real local Dask cluster: ``local_client``, ``child_pids``, ``new_children``.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
import torch

from napari_nst._layers import RECORD_KEY
from napari_nst.batch.cluster import LOOPBACK_HTTP
from napari_nst.cli import main
from napari_nst.core import prepare
from napari_nst.core.networks import TransformerNet
from napari_nst.core.provenance import RunRecord
from napari_nst.core.vgg import CONV_INDICES, random_convs

WAIT_MS = 60_000
"""Upper bound for waiting on a widget's run in tests (runs take seconds)."""

# --- the dock -------------------------------------------------------------------------


def press_and_wait(widget, qtbot, button=None) -> None:
    """Press Run (or ``button``) and wait until the run has ended (event-based)."""
    (button or widget.run).clicked.emit()
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)


def run_to_end(widget, qtbot, viewer, button=None, done: bool = False):
    """Press Run (or ``button``), wait until the run has ended and return the one layer
    it added to ``viewer`` (exactly one); with ``done``, its record says 'done'."""
    before = set(map(id, viewer.layers))
    press_and_wait(widget, qtbot, button)
    (output,) = [layer for layer in viewer.layers if id(layer) not in before]
    if done:
        assert output.metadata[RECORD_KEY]["status"] == "done"
    return output


def outputs(viewer) -> list:
    """The viewer's output layers (those with a run record), oldest first."""
    return [layer for layer in viewer.layers if RECORD_KEY in layer.metadata]


def shown(widget, name: str) -> bool:
    """Whether the dock's control ``name`` would be visible with the dock shown."""
    return getattr(widget, name).native.isVisibleTo(widget.native)


def iteration(widget) -> int:
    """The iteration the dock's current run has recorded (0 before its first)."""
    return widget.session.record.iteration if widget.session.record is not None else 0


def weight_changes(widget) -> list:
    """The weight changes the dock's current run has recorded."""
    return widget.session.record.weight_changes if widget.session.record is not None else []


def reweighted(widget) -> bool:
    return bool(weight_changes(widget))


# --- the command line -----------------------------------------------------------------

CLI_TINY = ["--vgg", "random", "--size", "64", "--device", "cpu", "--quiet"]
"""Flags of a tiny, quiet ``stylize`` with random VGG19 weights."""

CLI_CPU = ["--device", "cpu", "--quiet"]


def one_line_error(capsys, last_line: bool = False) -> str:
    """The CLI's error on stderr: one line, no traceback, ``napari-nst: error: …``.

    With ``last_line``, stderr may hold earlier lines (a batch's progress) and the
    error is its last line."""
    err = capsys.readouterr().err.strip()
    if last_line:
        err = err.splitlines()[-1]
    assert "\n" not in err and "Traceback" not in err
    assert err.startswith("napari-nst: error: ")
    return err


def stylize_logged(files, name: str, *extra: str) -> tuple[np.ndarray, dict]:
    """``napari-nst stylize`` on the ``files`` fixture's images with ``--log-json``:
    the image written and the log read back."""
    content, style, tmp = files
    out, log = tmp / f"{name}.png", tmp / f"{name}.json"
    assert main(["stylize", str(content), str(style), "-o", str(out), "--log-json", str(log),
                 *extra]) == 0  # fmt: skip
    return iio.imread(out), json.loads(log.read_text())


# --- the engine -----------------------------------------------------------------------

TINY = {"vgg": "random", "size": 64, "device": "cpu"}
"""A tiny run on the CPU with random VGG19 weights."""

TINY_SEEDED = {"size": 64, "vgg": "random", "device": "cpu", "seed": 0, "preview_every": 1}
TINY_UNSIZED = {"vgg": "random", "device": "cpu", "iterations": 3}


def steered_run(content, style, **options):
    """A run steered as a user would: weights changed at iteration 3, then continued."""
    job = prepare(content, style, iterations=5, **TINY_SEEDED, **options)
    record = RunRecord(job.options.to_dict())
    steps = job.steps()
    for step in steps:
        record.update(step)
        if step.iteration == 2:
            record.update(steps.send({"style_weight": 3e5, "tv_weight": 0.5}))
    result = None
    for step in job.continued(3).steps():
        record.update(step)
        result = step.image if step.image is not None else result
    return record.to_dict(), result


def smooth_painting() -> np.ndarray:
    """A style with a continuous, reddish palette (histogram matching needs more than
    the two values of a striped test pattern)."""
    from scipy.ndimage import gaussian_filter

    noise = gaussian_filter(np.random.default_rng(7).random((40, 56, 3)), (1.5, 1.5, 0))
    noise = (noise - noise.min()) / (noise.max() - noise.min())
    return np.rint(noise * [0.9, 0.4, 0.2] * 255).astype(np.uint8)


def cpu_vendor() -> str:
    """``AuthenticAMD``, ``GenuineIntel``, …; ``unknown`` where /proc/cpuinfo is not."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("vendor_id"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


# --- weights and models ---------------------------------------------------------------


def vgg19_state_dict(seed: int = 0, prefix: str = "features.") -> dict[str, torch.Tensor]:
    """Seeded random VGG19 weights in torchvision's key layout (tiny classifier stand-in)."""
    state: dict[str, torch.Tensor] = {}
    for index, (weight, bias) in random_convs(seed).items():
        state[f"{prefix}{index}.weight"] = weight
        state[f"{prefix}{index}.bias"] = bias
    if prefix == "features.":
        state["classifier.0.weight"] = torch.zeros(4, 4)
    assert len(CONV_INDICES) == 16
    return state


def transformer_state(seed: int = 0, legacy: bool = True) -> dict[str, torch.Tensor]:
    """A seeded TransformerNet state dict in pytorch/examples' key layout.

    Instance-norm scales are perturbed and the last layer is scaled to mid-grey
    ± a wide range, so the untrained network paints a textured picture instead of
    near-black; ``legacy`` adds the running-stat keys old torch versions saved.
    """
    torch.manual_seed(seed)
    state = TransformerNet().state_dict()
    state["deconv3.conv2d.weight"] = state["deconv3.conv2d.weight"] * 200
    state["deconv3.conv2d.bias"] = torch.full((3,), 127.5)
    for key in list(state):
        parts = key.split(".")
        if parts[-2].startswith("in") and parts[-1] == "weight":
            state[key] = state[key] + 0.3 * torch.randn_like(state[key])
            if legacy:
                stem = key.removesuffix("weight")
                state[stem + "running_mean"] = torch.zeros_like(state[key])
                state[stem + "running_var"] = torch.ones_like(state[key])
    return state


# --- batches --------------------------------------------------------------------------


def batch_photo(seed: int, shape=(36, 44, 3), dtype=np.uint8) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    base = np.sin(x / (3 + seed)) * np.cos(y / 5.0)
    noise = rng.random(shape)
    image = (base[..., None] if len(shape) == 3 else base) + noise
    image = (image - image.min()) / (image.max() - image.min())
    top = 255 if dtype == np.uint8 else 4000
    return np.rint(image * top).astype(dtype)


def batch_inputs(folder: Path, count: int = 6) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(count):
        iio.imwrite(folder / f"img{k}.png", batch_photo(k))
    return folder


def read_image(path: Path) -> np.ndarray:
    return tifffile.imread(path) if path.suffix == ".tif" else iio.imread(path)


def written_images(outdir: Path) -> dict[str, np.ndarray]:
    """Images by name (not the temporary files a killed writer may leave)."""
    return {
        p.relative_to(outdir).as_posix(): read_image(p)
        for p in sorted(outdir.rglob("*"))
        if p.suffix in (".png", ".tif") and not p.name.startswith(".")
    }


def sidecars(outdir: Path) -> dict[str, dict]:
    """Sidecars by the name of their image."""
    return {
        p.name.removesuffix(".json"): json.loads(p.read_text())
        for p in outdir.glob("*.json")
        if not p.name.startswith(".")
    }


# --- a real local Dask cluster ---------------------------------------------------------


@contextlib.contextmanager
def local_client(**scheduler_kwargs: Any) -> Iterator[Any]:
    """Two single-threaded worker processes on 127.0.0.1, one task each at a time
    (saturation 1.0); closed at the end, and no child process may outlive them."""
    distributed = pytest.importorskip("distributed")
    import dask

    before = child_pids()
    with dask.config.set({"distributed.scheduler.worker-saturation": 1.0}):
        cluster = distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=logging.ERROR,
            scheduler_kwargs={**LOOPBACK_HTTP, **scheduler_kwargs},
        )
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()
    alive = new_children(before)
    assert not alive, f"cluster processes left behind: {[p.cmdline() for p in alive]}"


def child_pids() -> set[int]:
    import psutil

    return {p.pid for p in psutil.Process().children(recursive=True)}


def new_children(before: set[int]) -> list:
    """Processes started since ``before`` that are still alive after a grace period.

    multiprocessing's resource tracker is not one of them: it serves every child
    this process spawns and ends with it.
    """
    import psutil

    new = [
        p
        for p in psutil.Process().children(recursive=True)
        if p.pid not in before and "resource_tracker" not in " ".join(p.cmdline())
    ]
    return psutil.wait_procs(new, timeout=10)[1]


# --- the job server -------------------------------------------------------------------

SERVER_URL = "http://127.0.0.1:8765"
"""The address the in-process app (FastAPI's TestClient) answers at."""
TINY_JOB = {"vgg": "random", "device": "cpu", "iterations": 2, "size": 64}
SERVER_DEADLINE = 120.0
"""Seconds a server test may wait for a job or a process."""


def png_bytes(image: np.ndarray) -> bytes:
    import imageio.v3 as iio

    buffer = io.BytesIO()
    iio.imwrite(buffer, image, extension=".png")
    return buffer.getvalue()


def decoded(data: bytes) -> np.ndarray:
    import imageio.v3 as iio

    return np.asarray(iio.imread(io.BytesIO(data)))


def job_form(options: dict[str, Any] | None = None, **fields: str) -> dict[str, str]:
    return {"options": json.dumps(TINY_JOB if options is None else options)} | fields


def wait_finished(service, job_ids, timeout: float = SERVER_DEADLINE) -> None:
    from napari_nst.server.jobs import FINISHED

    store = service.store
    with store.changed:
        assert store.changed.wait_for(
            lambda: all(store.jobs[i].status in FINISHED for i in job_ids), timeout
        ), {i: store.jobs[i].status for i in job_ids}


class ServerProcess:
    """``napari-nst serve --port 0`` in a subprocess; ``url`` once it listens."""

    def __init__(self, data: Path, *extra: str) -> None:
        env = os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "napari_nst.cli", "serve", "--port", "0", "--data",
             str(data), *extra],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env,
        )  # fmt: skip
        self.url = ""
        self.lines: list[str] = []
        deadline = time.monotonic() + SERVER_DEADLINE
        while time.monotonic() < deadline:
            line = self.process.stderr.readline()
            if not line:
                break
            self.lines.append(line)
            found = re.search(r"serving on (http://\S+)", line)
            if found:
                self.url = found.group(1)
                return
        self.process.kill()
        raise AssertionError("the server did not start: " + "".join(self.lines))

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(SERVER_DEADLINE)
        self.process.stderr.close()

    def stop(self) -> bool:
        """SIGTERM; whether the server shut down cleanly (uvicorn re-raises the signal)."""
        self.process.terminate()
        code = self.process.wait(SERVER_DEADLINE)
        self.process.stderr.close()
        return code in (0, -signal.SIGTERM)


def http_json(url: str, data: bytes | None = None, headers: dict | None = None) -> Any:
    import urllib.request

    request = urllib.request.Request(url, data=data, headers=headers or {})
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.loads(answer.read())


def poll(url: str, done, timeout: float = SERVER_DEADLINE) -> Any:
    """GET ``url`` until ``done(answer)``; a client of a separate process can only poll."""
    deadline = time.monotonic() + timeout
    while True:
        answer = http_json(url)
        if done(answer):
            return answer
        assert time.monotonic() < deadline, answer
        time.sleep(0.05)

"""Clients: the standard-library example (as a GIMP or Krita plug-in would call the
server) against a real server process, and ``napari-nst serve --stdio``."""

from __future__ import annotations

import importlib.util
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from napari_nst import stylize
from napari_nst.core.devices import torch_threads
from napari_nst.server.stdio import serve_stdio
from tests.helpers import TINY_JOB, ServerProcess, decoded, http_json

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "stylize_via_server.py"


def example():
    spec = importlib.util.spec_from_file_location("stylize_via_server", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def submit_over_http(url, images, options, job_id):
    """Submit without following (the example's multipart body); returns the id."""
    files = [(role, (name, data)) for role, (name, data, _) in images.items()]
    body, boundary = _body(example(), {"options": json.dumps(options), "id": job_id}, files)
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}", "X-NST-Key": "k"}
    return http_json(f"{url}/jobs", body, headers)["id"]


def _body(client, fields, files):
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for role, (name, data) in files:
            path = Path(folder) / name
            path.write_bytes(data)
            paths.append((role, path))
        return client._multipart(fields, paths)


@pytest.mark.slow
def test_the_standard_library_example_stylizes_through_a_real_server(
    files, tmp_path, content_rgb, style_rgb
):
    content, style, _ = files
    server = ServerProcess(tmp_path / "data")
    client = example()
    try:
        seen = []
        job = client.stylize_via_server(
            content, [style], tmp_path / "out.png", TINY_JOB, server.url, poll=0.05,
            on_progress=seen.append,
        )  # fmt: skip
        assert job["status"] == "done" and seen[-1]["status"] == "done"
        record = http_json(f"{server.url}/jobs/{job['id']}/record")
        with torch_threads(record["threads"]):
            expected = stylize(content_rgb, style_rgb, **TINY_JOB)
        assert np.array_equal(decoded((tmp_path / "out.png").read_bytes()), expected)

        with pytest.raises(client.ServerError, match="400: unknown option"):
            client.stylize_via_server(content, [style], tmp_path / "x.png", {"bad": 1}, server.url)
        code = client.main([str(content), str(style), "-o", str(tmp_path / "cli.png"),
                            "--server", server.url, "--option", "vgg=random",
                            "--option", "iterations=2", "--option", "size=64",
                            "--option", "device=cpu"])  # fmt: skip
        assert code == 0
        assert (tmp_path / "cli.png").read_bytes() == (tmp_path / "out.png").read_bytes()
    finally:
        assert server.stop()


def test_stdio_takes_json_lines_and_answers_with_events(files, tmp_path, content_rgb, style_rgb):
    content, style, _ = files
    paths = {"content": str(content), "style": str(style)}
    lines = [
        json.dumps(paths | {"output": str(tmp_path / "a.png"), "options": TINY_JOB, "id": "a"}),
        "{broken",
        json.dumps(paths | {"output": str(tmp_path / "b.png"), "options": {"iterationz": 1}}),
        json.dumps({"content": "/no/such.png", "style": str(style), "output": "/tmp/x.png"}),
    ]
    out = io.StringIO()
    code = serve_stdio(io.StringIO("\n".join(lines) + "\n"), out, tmp_path / "data")
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    mine = [e["event"] for e in events if e.get("id") == "a"]
    assert mine[0] == "queued" and mine[1] == "started" and mine[-1] == "done"
    assert mine.count("progress") == 2
    errors = [e for e in events if e["event"] == "error"]
    assert [e["line"] for e in errors] == [2, 3, 4]
    assert "unknown option" in errors[1]["message"] and "cannot read" in errors[2]["message"]
    assert code == 0  # every accepted job was done
    expected = stylize(content_rgb, style_rgb, **TINY_JOB)
    assert np.array_equal(decoded((tmp_path / "a.png").read_bytes()), expected)
    assert json.loads((tmp_path / "a.png.json").read_text())["status"] == "done"


@pytest.mark.slow
def test_napari_nst_serve_stdio_in_a_process_and_no_fastapi_for_other_commands(files, tmp_path):
    content, style, _ = files
    paths = {"content": str(content), "style": str(style)}
    line = json.dumps(paths | {"output": str(tmp_path / "out.png"), "options": TINY_JOB})
    done = subprocess.run(
        [sys.executable, "-m", "napari_nst.cli", "serve", "--stdio", "--data",
         str(tmp_path / "data")],
        input=line + "\n", capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    events = [json.loads(text) for text in done.stdout.splitlines()]
    assert events[-1]["event"] == "done" and Path(events[-1]["output"]).is_file()

    check = "import sys; from napari_nst.cli.commands import build_parser; build_parser(); "
    check += "print(sorted(m for m in ('fastapi', 'uvicorn', 'starlette') if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert loaded.stdout.strip() == "[]", loaded.stderr


def test_stdio_cancels_the_jobs_it_is_told_to(files, tmp_path):
    content, style, _ = files
    paths = {"content": str(content), "style": str(style)}
    lines = [
        json.dumps(
            paths
            | {
                "output": str(tmp_path / "long.png"),
                "id": "long",
                "options": TINY_JOB | {"iterations": 400},
            }
        ),
        json.dumps(
            paths | {"output": str(tmp_path / "next.png"), "id": "next", "options": TINY_JOB}
        ),
        json.dumps({"cancel": "next"}),
        json.dumps({"cancel": "long"}),
        json.dumps({"cancel": "nobody"}),
    ]
    out = io.StringIO()
    code = serve_stdio(io.StringIO("\n".join(lines) + "\n"), out, tmp_path / "data")
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    ends = {e["id"]: e for e in events if e["event"] in ("done", "failed", "cancelled")}
    assert ends["next"]["event"] == ends["long"]["event"] == "cancelled"
    assert [e["line"] for e in events if e["event"] == "error"] == [5]
    assert code == 1 and not (tmp_path / "next.png").exists()

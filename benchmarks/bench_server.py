"""Job server under load: many clients, many small jobs, over loopback.

Starts ``napari-nst serve --port 0`` on 127.0.0.1 with a temporary data folder; then
``--clients`` threads (standard-library HTTP, as a plug-in would) submit
``--jobs`` jobs in all (distinct content weights, 64 px, random weights, CPU), each resubmitted
once (must come back as the same job), and follow them by polling. Prints the wall
time, jobs per second, latency (submit to done) percentiles, the server's own seconds
per job, and checks: every job done, none lost or duplicated, and a sample of results
equal bit for bit to ``core.stylize`` run here with the record's torch threads.
Then SIGKILLs the server mid-run with jobs queued, restarts it and times the
recovery (every accepted job must end done or failed with a reason).

    python benchmarks/bench_server.py                        # 20 clients, 100 jobs
    python benchmarks/bench_server.py --clients 4 --jobs 12 --iterations 1
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def client_module():
    spec = importlib.util.spec_from_file_location(
        "stylize_via_server", ROOT / "examples" / "stylize_via_server.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def start_server(data: Path) -> tuple[subprocess.Popen, str]:
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(ROOT / "src"), *sys.path])}
    process = subprocess.Popen(
        [sys.executable, "-m", "napari_nst.cli", "serve", "--port", "0", "--data", str(data)],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env,
    )  # fmt: skip
    for line in process.stderr:
        found = re.search(r"serving on (http://\S+)", line)
        if found:
            return process, found.group(1)
    raise SystemExit("the server did not start")


def variant(number: int) -> dict:
    """Options of job ``number``: distinct jobs, one seed (random VGG19 weights depend on
    the seed and take seconds to make; the server is measured, not that)."""
    return {"seed": 0, "content_weight": 1 + number / 1000}


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=60) as answer:
        return json.loads(answer.read())


def submit(client, url: str, files, options: dict, key: str) -> dict:
    body, boundary = client._multipart({"options": json.dumps(options)}, files)
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}", "X-NST-Key": key}
    return client._call(f"{url}/jobs", headers, body)


def follow(url: str, job_id: str, poll: float, deadline: float) -> dict:
    while True:
        job = get(f"{url}/jobs/{job_id}")
        if job["status"] not in ("queued", "running"):
            return job
        if time.monotonic() > deadline:
            raise SystemExit(f"job {job_id} still {job['status']} at the deadline")
        time.sleep(poll)  # a client polling at its own pace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=100, help="jobs in all")
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--check", type=int, default=5, help="results compared bit for bit")
    parser.add_argument("--poll", type=float, default=0.2, help="seconds between GETs")
    parser.add_argument("--timeout", type=float, default=3600)
    args = parser.parse_args()
    os.environ.setdefault("NAPARI_NST_PRECISION", "fp32")

    import imageio.v3 as iio
    import numpy as np

    flags = subprocess.run(
        "lscpu | grep -o 'avx512_bf16\\|amx_bf16' | sort -u", shell=True, capture_output=True,
        text=True,
    ).stdout.split()  # fmt: skip
    print(f"cpu: {os.cpu_count()} cores, bf16 flags: {' '.join(flags) or 'none'}")
    client = client_module()
    folder = Path(tempfile.mkdtemp(prefix="bench-server-"))
    y, x = np.mgrid[0:48, 0:64] / 64.0
    content = np.rint((np.stack([np.sin(9 * x), np.cos(7 * y), x * y], -1) + 1) * 127).astype(
        np.uint8
    )
    style = np.random.default_rng(7).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    iio.imwrite(folder / "content.png", content)
    iio.imwrite(folder / "style.png", style)
    files = [("content", folder / "content.png"), ("style", folder / "style.png")]
    base = {"vgg": "random", "device": "cpu", "size": args.size}
    base["iterations"] = args.iterations

    process, url = start_server(folder / "data")
    try:
        results: dict[int, dict] = {}
        latencies: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()
        deadline = time.monotonic() + args.timeout

        def one_client(number: int) -> None:
            mine = range(number, args.jobs, args.clients)
            try:
                accepted = []
                for seed in mine:
                    start = time.monotonic()
                    job = submit(client, url, files, base | variant(seed), f"c{number}")
                    again = submit(client, url, files, base | variant(seed), f"c{number}")
                    if again["id"] != job["id"]:
                        errors.append(f"resubmission of seed {seed} made a new job")
                    accepted.append((seed, job["id"], start))
                for seed, job_id, start in accepted:
                    job = follow(url, job_id, args.poll, deadline)
                    with lock:
                        results[seed] = job
                        latencies.append(time.monotonic() - start)
            except Exception as exc:
                errors.append(f"client {number}: {exc}")

        start = time.perf_counter()
        threads = [threading.Thread(target=one_client, args=(n,)) for n in range(args.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - start

        listed = get(f"{url}/jobs")["jobs"]
        done = sum(job["status"] == "done" for job in results.values())
        ids = [job["id"] for job in results.values()]
        print(
            f"load: {args.jobs} jobs ({args.iterations} iterations, {args.size} px) from "
            f"{args.clients} clients: {wall:.1f} s wall, {args.jobs / wall:.2f} jobs/s"
        )
        latencies.sort()
        print(
            f"  submit-to-done latency: median {statistics.median(latencies):.1f} s, "
            f"p90 {latencies[int(0.9 * (len(latencies) - 1))]:.1f} s, max {latencies[-1]:.1f} s"
        )
        records = [get(f"{url}/jobs/{job_id}/record") for job_id in ids]
        seconds = [record["server"]["seconds"] for record in records]
        print(f"  server seconds per job: median {statistics.median(seconds):.2f} s")
        print(
            f"  done {done}/{args.jobs}, listed {len(listed)}, distinct ids {len(set(ids))}, "
            f"errors {len(errors)}"
        )
        from napari_nst import stylize
        from napari_nst.core.devices import torch_threads

        same = 0
        for seed in sorted(results)[: args.check]:
            record = records[ids.index(results[seed]["id"])]
            with torch_threads(record["threads"]):
                expected = stylize(content, style, **base | variant(seed))
            image = iio.imread(folder / "data" / "jobs" / results[seed]["id"] / "result.png")
            same += bool(np.array_equal(image, expected))
        print(f"  bit-identical to core.stylize: {same}/{min(args.check, len(results))}")
        for error in errors[:5]:
            print(f"  error: {error}")

        # SIGKILL with a long job running and short ones queued, then restart.
        long = submit(client, url, files, base | variant(10**6) | {"iterations": 40}, "k")
        queued = [
            submit(client, url, files, base | variant(10**6 + k), "k")["id"] for k in (1, 2, 3)
        ]
        while get(f"{url}/jobs/{long['id']}").get("iteration", 0) < 1:
            time.sleep(args.poll)
    finally:
        process.kill()
        process.wait()
    start = time.perf_counter()
    process, url = start_server(folder / "data")
    try:
        restarted = time.perf_counter() - start
        ends = [follow(url, job, args.poll, deadline) for job in [long["id"], *queued]]
        print(
            f"SIGKILL mid-run, restart: up again in {restarted:.1f} s; the 4 accepted jobs "
            f"ended {[job['status'] for job in ends]} after "
            f"{time.perf_counter() - start:.1f} s; finished jobs still served: "
            f"{len(get(f'{url}/jobs')['jobs'])} listed"
        )
    finally:
        process.terminate()
        process.wait()


if __name__ == "__main__":
    main()

"""Main-thread stalls in napari while the Style Transfer widget runs.

A run streams a step per iteration to the main thread, which updates the
progress bar, the status, the run record, the loss curve and (with a preview in
every step here, the worst case) the output layer. If that work, or anything it
triggers, holds the main thread, napari stutters: pan and zoom lag, clicks wait.

A ``QTimer`` asks to fire every 5 ms; the gaps between its ticks are what a user
would feel. Gaps near 5 ms mean a responsive UI; the maximum is the worst freeze.
Three baselines in the same viewer come first (idle; a napari progress bar open;
napari redrawing a changed layer), and our own share of each step and the loss
curve's painting are timed and matched to the longest gaps, to tell our work
from napari's and Qt's.
``--replay MS`` swaps the engine for recorded steps, one every MS ms, so that no
computation competes with the UI for the CPU and the GIL.

    xvfb-run -a python benchmarks/bench_ui_stalls.py [--iterations 100] [--size 64]
    xvfb-run -a python benchmarks/bench_ui_stalls.py --replay 250 --iterations 60
    xvfb-run -a python benchmarks/bench_ui_stalls.py --profile ui.prof

It needs a display (Xvfb is fine, but its software OpenGL makes every frame
slow). On a busy 2-core machine the numbers include other processes' time
slices: run it on an idle one for figures to compare.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import os
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64, help="working size (px)")
    parser.add_argument("--content-size", type=int, default=64, help="content layer size (px)")
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--tick-ms", type=int, default=5)
    parser.add_argument("--idle", type=float, default=3.0, help="seconds of each baseline")
    parser.add_argument("--stall-ms", type=float, default=50.0, help="list gaps this long")
    parser.add_argument(
        "--replay",
        type=float,
        metavar="MS",
        help="no engine during the run: replay 10 recorded steps, one every MS ms, so "
        "that what is measured is the UI's own work (no competition for CPU and GIL)",
    )
    parser.add_argument("--profile", help="write a cProfile of the main thread here")
    args = parser.parse_args()

    import napari
    from qtpy.QtCore import QTimer
    from skimage import data
    from skimage.transform import resize

    import napari_nst.batch.stack as dask_stack
    from napari_nst._widget import StyleTransferWidget
    from napari_nst._widget.loss_plot import LossPlot

    def image(array: np.ndarray, size: int) -> np.ndarray:
        scale = size / max(array.shape[:2])
        shape = (round(array.shape[0] * scale), round(array.shape[1] * scale), 3)
        return (resize(array, shape, anti_aliasing=True) * 255).astype(np.uint8)

    viewer = napari.Viewer(show=True)
    content = viewer.add_image(image(data.astronaut(), args.content_size), name="astronaut")
    style = viewer.add_image(image(data.coffee(), args.size), name="coffee")
    widget = StyleTransferWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Style Transfer")
    widget.content.value, widget.style.value = content, style
    widget.vgg.value, widget.device.value = "random", "cpu"
    widget.size.value, widget.iterations.value = args.size, args.iterations
    widget.session.preview_interval = 0.0  # show every preview the engine sends

    # The widget asks for a preview every iterations/100 steps; force every step.
    prepare_run = dask_stack.prepare_run
    recorded: list = []

    @functools.wraps(prepare_run)
    def every_step(*a, **options):
        options |= {"preview_every": 1}
        if args.replay is None:
            return prepare_run(*a, **options)
        if not recorded:  # the engine's first 10 steps, recorded before the clock starts
            recorded.extend(prepare_run(*a, **(options | {"iterations": 10})).steps())
        return Replay(prepare_run(*a, **options), recorded, args.iterations, args.replay / 1e3)

    dask_stack.prepare_run = every_step
    if args.replay is not None:
        widget.prepare()

    # Time what the main thread does for us, as (start, end) intervals: a step's
    # handling (record, status, loss curve, preview; napari's progress bar is left
    # out), the preview in it (write and refresh; the first one creates the layer)
    # and the loss curve's painting.
    spans: dict[str, list[tuple[float, float]]] = {"step": [], "preview": [], "plot": []}
    steps: list[int] = []

    def timed(name: str, function):
        @functools.wraps(function)
        def wrapper(*a, **k):
            begin = time.perf_counter()
            try:
                return function(*a, **k)
            finally:
                spans[name].append((begin, time.perf_counter()))

        return wrapper

    take_step = timed("step", widget.session._take_step)

    def counted(step, record) -> None:
        steps.append(step.iteration)
        take_step(step, record)

    widget.session._take_step = counted
    widget.session._show = timed("preview", widget.session._show)
    LossPlot._paint = timed("plot", LossPlot._paint)
    profiler = cProfile.Profile() if args.profile else None

    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(args.tick_ms)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    app = napari.qt.get_qapp()
    moments: dict[str, float] = {}
    outcome: dict[str, object] = {}

    def finished() -> None:
        if profiler is not None:
            profiler.disable()
        moments["end"] = time.perf_counter()
        timer.stop()
        outcome.update(status=widget.status.value, points=widget.loss_plot.count())
        app.quit()

    on_finished = widget.session._on_finished

    def finished_when_torn_down() -> None:
        on_finished()  # may be deferred until the step being handled is done
        if not widget.running:
            finished()

    widget.session._on_finished = finished_when_torn_down
    # Three baselines in the same viewer before the run: idle; a napari progress
    # bar open (its activity indicator animates, and every frame of it repaints the
    # window); napari redrawing a changed 64 px layer four times a second.
    redraw = QTimer()
    redraw.setInterval(250)
    redraw.timeout.connect(content.refresh)
    bar: list = []

    def progress_open() -> None:
        moments["progress"] = time.perf_counter()
        bar.append(napari.utils.progress(total=1, desc="baseline"))

    def redraws() -> None:
        bar.pop().close()
        moments["redraws"] = time.perf_counter()
        redraw.start()

    def start() -> None:
        redraw.stop()
        moments["run"] = time.perf_counter()
        widget.run.clicked.emit()
        spans["click"] = [(moments["run"], time.perf_counter())]
        if profiler is not None:
            profiler.enable()

    QTimer.singleShot(500, timer.start)
    QTimer.singleShot(500 + round(1000 * args.idle), progress_open)
    QTimer.singleShot(500 + round(2000 * args.idle), redraws)
    QTimer.singleShot(500 + round(3000 * args.idle), start)
    napari.run()

    ticks_array = np.asarray(ticks)
    gaps = np.diff(ticks_array) * 1000
    ends = ticks_array[1:]
    idle = gaps[ends <= moments["progress"]]
    progressing = gaps[(ends > moments["progress"]) & (ends <= moments["redraws"])]
    redrawing = gaps[(ends > moments["redraws"]) & (ends <= moments["run"])]
    run = gaps[ends > moments["run"]]
    print(
        f"steps seen: {len(steps)} (last iteration {steps[-1] if steps else None}); "
        f"loss points: {outcome.get('points')}; status {outcome.get('status')}; "
        f"run {moments['end'] - moments['run']:.1f} s"
    )
    print(summary(f"idle viewer ({args.idle:.0f} s), gaps", idle))
    print(summary("a napari progress bar open, no run, gaps", progressing))
    print(summary("napari redrawing a layer 4x/s, no run, gaps", redrawing))
    print(summary(f"during the run, gaps ({len(run)})", run))
    for name, intervals in spans.items():
        print(summary(f"{name}, time", np.array([b - a for a, b in intervals]) * 1000))
    stalls = sorted(zip(run, ends[ends > moments["run"]], strict=True), reverse=True)
    stalls = [(gap, end) for gap, end in stalls if gap >= args.stall_ms]
    print(f"{len(stalls)} gaps of {args.stall_ms:.0f} ms or more during the run; the longest,")
    print("with the time each part of our step handling overlapped them:")
    for gap, end in stalls[:12]:
        begin = end - gap / 1000
        inside = [
            f"{name} {1000 * (min(b, end) - max(a, begin)):.0f} ms"
            for name, intervals in spans.items()
            for a, b in intervals
            if a < end and b > begin
        ]
        print(f"  {gap:6.1f} ms at {begin - moments['run']:6.2f} s: {', '.join(inside) or '-'}")
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    if profiler is not None:
        profiler.dump_stats(args.profile)
        print(f"profile written to {args.profile}")


class Replay:
    """A prepared run whose steps are recorded ones, renumbered, at a fixed pace."""

    def __init__(self, job, recorded, count: int, interval: float) -> None:
        self._job, self._recorded, self._count, self._interval = job, recorded, count, interval
        self._stopped = False

    def __getattr__(self, name: str):
        return getattr(self._job, name)

    def cancel(self) -> None:
        self._stopped = True

    def steps(self):
        from dataclasses import replace

        for iteration in range(1, self._count + 1):
            time.sleep(self._interval)  # the worker thread, like the engine, sets the pace
            last = iteration == self._count or self._stopped
            step = self._recorded[(iteration - 1) % len(self._recorded)]
            yield replace(
                step,
                iteration=iteration,
                total=self._count,
                done=last,
                plane_done=last,
                cancelled=self._stopped,
            )
            if last:
                return


def summary(label: str, values: np.ndarray) -> str:
    if not len(values):
        return f"{label}: none"
    return (
        f"{label} (ms): max {values.max():.1f}  p99 {np.percentile(values, 99):.1f}  "
        f"median {np.median(values):.1f}"
    )


if __name__ == "__main__":
    main()

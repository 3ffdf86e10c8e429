"""Take docs/screenshot-wct.png: napari with a finished WCT run and its alpha slider.

The Style Transfer dock with method ``wct`` (the shipped decoders, real VGG19 weights,
offline) on the astronaut and *The Starry Night* at the default size; when the run
has finished, alpha is set to ``--alpha``, which decodes the last level again in place
(no encoding), and the window is taken once that result is in the layer.

    xvfb-run -a -s "-screen 0 1366x768x24" python docs/screenshot_universal.py \
        [--alpha 0.6] [--screen 1366x768] [-o docs/screenshot-wct.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alpha", type=float, default=0.6, help="alpha after the run")
    parser.add_argument("--screen", default="1366x768", help="window size WxH (a laptop)")
    parser.add_argument("-o", "--output", type=Path, default=Path("docs/screenshot-wct.png"))
    args = parser.parse_args()

    import napari
    from qtpy.QtCore import QTimer
    from screenshot_run import open_dock

    viewer, window, widget = open_dock(args.screen)
    widget.essentials.method.value = "wct"
    session = widget.session

    def wait_for_redecode() -> None:  # the redecode runs in a worker; look again soon
        if session._redecoding is not None or "redecoded" not in str(session.status.value):
            QTimer.singleShot(100, wait_for_redecode)
            return
        viewer.layers["astronaut"].visible = False
        viewer.reset_view()
        QTimer.singleShot(300, shoot)  # let the layer paint

    def shoot() -> None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        window.grab().save(str(args.output))
        print(f"saved {args.output}: {session.status.value}")
        napari.qt.get_qapp().quit()

    on_finished = session._on_finished

    def finished() -> None:
        on_finished()
        if not widget.running:
            print(f"run finished: {session.status.value}")
            widget.essentials.alpha.value = args.alpha  # the slider: redecode in place
            QTimer.singleShot(100, wait_for_redecode)

    session._on_finished = finished
    QTimer.singleShot(500, widget.run.clicked.emit)
    napari.run()


if __name__ == "__main__":
    main()

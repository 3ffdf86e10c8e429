"""The Style Transfer widget's job queue: Run while a run is going waits its turn.

A queued job is validated (and its inputs copied) when it is submitted, so errors
show at once and later edits of the layers or boxes do not change it. Each waiting
job is one row with a ✕ that drops it; the widget starts the next job whenever a
run ends (done, cancelled or failed). Queued runs share what the engine caches per
process (VGG weights, style targets), so the queue is served by one loss network.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from magicgui.widgets import Container, Label, PushButton
from qtpy.QtWidgets import QSizePolicy

if TYPE_CHECKING:
    from .request import RunRequest


class JobQueue(Container):
    """``queue``: the waiting jobs, first to start at the top."""

    def __init__(self, start: Callable[[RunRequest], None], busy: Callable[[], bool]):
        super().__init__(name="queue", labels=False, visible=False, scrollable=False)
        self.label = "queue"
        self.tooltip = "Runs waiting for the current one; ✕ removes a run from the queue."
        self._start, self._busy = start, busy
        self._jobs: list[RunRequest] = []

    @property
    def jobs(self) -> list[RunRequest]:
        """The waiting runs, in order."""
        return list(self._jobs)

    def submit(self, request: RunRequest) -> None:
        """Start ``request`` now, or queue it behind the run that is going."""
        if not self._busy():
            self._start(request)
            return
        row = Container(layout="horizontal", labels=False, scrollable=False)
        row.margins = (0, 0, 0, 0)
        text = Label(name="job", value=describe(request))
        text.native.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        row.append(text)
        cancel = PushButton(name="cancel", text="✕", tooltip="Remove this run from the queue")
        cancel.max_width = 32
        cancel.changed.connect(lambda: self.remove(self.index(row)))
        row.append(cancel)
        self._jobs.append(request)
        self.append(row)
        self._refresh()

    def remove(self, position: int) -> None:
        """Drop the waiting job at ``position`` (its inputs are freed)."""
        del self._jobs[position]
        del self[position]
        self._refresh()

    def start_next(self) -> bool:
        """Start the first waiting job (the run before it has ended); False if none."""
        if not self._jobs or self._busy():
            return False
        request = self._jobs[0]
        self.remove(0)
        self._start(request)
        return True

    def drop_all(self) -> None:
        while self._jobs:
            self.remove(len(self._jobs) - 1)

    def _refresh(self) -> None:
        self.visible = bool(self._jobs)
        self.label = f"queue ({len(self._jobs)})"


def describe(request: RunRequest) -> str:
    """One line naming a waiting run: its output layer, and what differs in a sweep."""
    options = request.run.options
    what = request.label or request.name
    if options.method == "gatys":
        return f"{what}  ({options.iterations} it.)"
    return what

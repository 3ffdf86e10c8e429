"""The run record: one dict for the output layer's metadata and the CLI's JSON log.

Everything needed to understand (and later re-run) a result travels with it:
parameters, device and precision, torch threads, weights source and hash,
per-step losses. A record is itself a recipe (:mod:`.recipe`).
"""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Any

from .step import Step

STATUSES = ("running", "done", "cancelled", "failed")


def versions() -> dict[str, str]:
    """Versions of the packages that determine a result."""
    found = {"python": platform.python_version()}
    for package in ("napari-nst", "torch", "torchvision", "numpy", "scikit-image", "napari"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return found


def threads_now() -> int:
    """torch's intra-op threads, as a run started now will use them (process-wide).

    CPU results depend on it: reductions are split across threads.
    """
    import torch

    return torch.get_num_threads()


class RunRecord:
    """Mutable while a run streams; ``to_dict`` gives a JSON-ready snapshot."""

    def __init__(self, params: dict[str, Any], sources: dict[str, Any] | None = None) -> None:
        self.params = params
        self.sources = sources or {}
        self.threads = threads_now()
        self.status = "running"
        self.iteration = 0
        self.losses: dict[str, float] = {}
        self.history: list[dict[str, Any]] = []
        self.info: dict[str, Any] = {}
        self.planes = {"done": 0, "total": 1}
        self.message = ""
        self.early_stops: list[dict[str, int]] = []
        self.weight_changes: list[dict[str, float]] = []
        self.continued: list[dict[str, int]] = []
        self._versions = versions()

    def update(self, step: Step) -> None:
        if self.status in ("done", "cancelled") and step.iteration > self.iteration:
            self.reopen(step.total - self.iteration)  # a continued run's first step
        self.iteration = step.iteration
        self.planes = {"done": step.plane + int(step.plane_done), "total": step.planes}
        self.losses = dict(step.losses)
        if step.reweighted:  # the user steered the run: these weights hold from here
            self.weight_changes.append({"iteration": step.iteration, **step.reweighted})
        if step.converged:  # early stopping ended this plane
            self.early_stops.append({"plane": step.plane, "iteration": step.iteration})
        if not step.cancelled:
            entry = {"iteration": step.iteration, "losses": self.losses, "elapsed": step.elapsed}
            if step.planes > 1:
                entry["plane"] = step.plane
            self.history.append(entry)
        if step.done:
            self.status = "cancelled" if step.cancelled else "done"

    def reopen(self, iterations: int, size: int | None = None) -> None:
        """A finished run goes on for ``iterations`` more ("Continue"; at working size
        ``size`` for a full-size render): the record runs again, and says where the
        continuation began, so that a replay can too."""
        entry = {"after": self.iteration, "iterations": iterations}
        self.continued.append(entry | ({"size": size} if size else {}))
        self.status, self.message = "running", ""

    def finish(self, status: str, message: str = "") -> None:
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}; got {status!r}")
        self.status = status
        self.message = message

    def to_dict(self) -> dict[str, Any]:
        record = {
            "params": self.params,
            "status": self.status,
            "iteration": self.iteration,
            "losses": self.losses,
            "history": self.history,
            "planes": self.planes,
            "threads": self.threads,
            **self.info,
            "sources": self.sources,
            "versions": self._versions,
        }
        if self.weight_changes:
            record["weight_changes"] = self.weight_changes
        if self.continued:
            record["continued"] = self.continued
        if self.early_stops:
            record["early_stop"] = self.early_stops
        if self.message:
            record["message"] = self.message
        return record

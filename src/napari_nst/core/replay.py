"""Replaying how a run was steered: weights changed mid-run and continuations.

A record's ``params`` only say how a run started. A user who changed the weights
while watching, or pressed Continue, made a different image, and the record says
exactly when: ``weight_changes`` holds the first iteration computed with each new
set of weights, ``continued`` the iteration after which each continuation began.
Sending the same weights after the same steps, and continuing after the same
iterations, makes the same image again (same device and threads).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .plane_run import check_weights
from .step import Step


@dataclass(frozen=True)
class Steering:
    """What a record says was done to a run while it ran (empty for a plain run)."""

    weight_changes: tuple[tuple[int, dict[str, float]], ...] = ()
    continued: tuple[tuple[int, int, int | None], ...] = ()
    """(iteration after which it began, iterations, working size or None) per continuation."""

    def __bool__(self) -> bool:
        return bool(self.weight_changes or self.continued)

    @classmethod
    def from_record(cls, record: Mapping[str, Any], name: str = "recipe") -> Steering:
        """Validated; raises ``ValueError`` naming the bad entry."""
        changes = []
        for entry in _entries(record, "weight_changes", name):
            weights = {key: value for key, value in entry.items() if key != "iteration"}
            changes.append((_count(entry.get("iteration"), f"{name}: weight_changes"),
                            check_weights(weights)))  # fmt: skip
        continued = [
            (
                _count(entry.get("after"), f"{name}: continued", minimum=0),
                _count(entry.get("iterations"), f"{name}: continued"),
                None if entry.get("size") is None else _size(entry["size"], name),
            )
            for entry in _entries(record, "continued", name)
        ]
        return cls(tuple(changes), tuple(continued))

    def to_dict(self) -> dict[str, Any]:
        return {
            "weight_changes": [{"iteration": i, **w} for i, w in self.weight_changes],
            "continued": [
                {"after": a, "iterations": n} | ({"size": s} if s else {})
                for a, n, s in self.continued
            ],
        }


def steered(job: Any, steering: Steering) -> Iterator[Step]:
    """``job``'s steps, with the recorded weights sent and continuations run.

    A weight change recorded at iteration ``k`` is sent when step ``k - 1``
    arrives, as the widget's change reached the engine. A consumer's own ``send``
    (``STOP``) takes precedence and ends the replay.
    """
    changes = {iteration - 1: weights for iteration, weights in steering.weight_changes}
    for segment in [None, *steering.continued]:
        if segment is not None:
            after, iterations, size = segment
            if job.last_iteration != after:  # the replay ended elsewhere: nothing to continue
                return
            job = job.continued(iterations, size)
        steps = job.steps()
        command, stopped = None, False
        while True:
            try:
                step = steps.send(command)
            except StopIteration:
                break
            sent = yield step
            stopped = stopped or sent is not None
            command = sent if sent is not None else changes.get(step.iteration)
        if stopped:  # the consumer ended it: no further continuation
            return


def _entries(record: Mapping[str, Any], key: str, name: str) -> Sequence[Mapping[str, Any]]:
    entries = record.get(key, [])
    if not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries):
        raise ValueError(f"{name}: {key} must be a list of objects")
    return entries


def _size(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 32 <= value <= 16384:
        raise ValueError(f"{name}: continued: size must be a whole number of px; got {value!r}")
    return value


def _count(value: object, what: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{what}: iterations must be whole numbers ≥ {minimum}; got {value!r}")
    return value

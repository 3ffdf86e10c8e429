"""Events from the runners (threads) to WebSocket clients (asyncio), per job or all.

An event is a JSON-ready dict with ``event`` (queued, started, progress, preview, done,
failed, cancelled) and ``id``. A subscriber that reads too slowly loses progress and
preview events, never the others: a stream that ends always says how the job ended.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

QUEUE_SIZE = 256
DROPPABLE = ("progress", "preview")


@dataclass(eq=False)
class Subscriber:
    loop: asyncio.AbstractEventLoop
    job: str | None
    """One job's events, or (None) every job's whose key digest is ``client``."""
    client: str | None = None
    previews: bool = False
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)


class Hub:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[Subscriber] = []
        self._listeners: list[Callable[[dict[str, Any]], None]] = []

    def listen(self, listener: Callable[[dict[str, Any]], None]) -> None:
        """Call ``listener(event)`` for every event, in the publishing thread."""
        with self._lock:
            self._listeners.append(listener)

    def subscribe(self, subscriber: Subscriber) -> Subscriber:
        with self._lock:
            self._subscribers.append(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

    def wants_previews(self, job: str) -> bool:
        with self._lock:
            return any(s.previews and s.job in (None, job) for s in self._subscribers)

    def publish(self, event: dict[str, Any], client: str | None = None) -> None:
        """Send ``event`` (of job ``event['id']``, submitted by ``client``) from any thread."""
        with self._lock:
            targets = [
                s
                for s in self._subscribers
                if (s.job == event["id"] or (s.job is None and s.client in (None, client)))
                and (event["event"] != "preview" or s.previews)
            ]
            listeners = list(self._listeners)
        for listener in listeners:
            listener(event)
        for subscriber in targets:
            try:
                subscriber.loop.call_soon_threadsafe(_put, subscriber.queue, event)
            except RuntimeError:  # its loop is closed: the connection is gone
                self.unsubscribe(subscriber)


def _put(queue: asyncio.Queue, event: dict[str, Any]) -> None:
    if event["event"] in DROPPABLE and queue.qsize() >= QUEUE_SIZE:
        return  # a slow reader: skip progress, keep what says how the job ended
    queue.put_nowait(event)

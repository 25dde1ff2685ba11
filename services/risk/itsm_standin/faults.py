"""Faults that tests inject into the stand-in: error statuses, Retry-After, slow responses, lost responses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Fault:
    """Applies to the next ``times`` requests whose method and path start match.

    With ``phase`` "before" the stand-in responds with the fault instead of handling the request. With
    "after" it handles the request (the ticket is written) and then responds with the fault, as when a response
    is lost after the server committed. ``delay_s`` delays the response, long enough to make a client time out.
    """

    path_prefix: str
    method: str | None = None
    status: int | None = 500
    retry_after: str | None = None
    delay_s: float = 0.0
    times: int = 1
    phase: str = "before"

    @classmethod
    def parse(cls, document: dict[str, Any]) -> Fault:
        phase = document.get("phase", "before")
        if phase not in ("before", "after"):
            raise ValueError(f"phase must be before or after, got {phase!r}")
        return cls(
            path_prefix=str(document["path"]),
            method=document.get("method"),
            status=document.get("status", 500),
            retry_after=document.get("retry_after"),
            delay_s=float(document.get("delay_s", 0.0)),
            times=int(document.get("times", 1)),
            phase=phase,
        )

    def matches(self, method: str, path: str) -> bool:
        return path.startswith(self.path_prefix) and (self.method is None or self.method.upper() == method)


class FaultPlan:
    def __init__(self) -> None:
        self.faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        self.faults.append(fault)

    def clear(self) -> None:
        self.faults.clear()

    def take(self, method: str, path: str) -> Fault | None:
        """Return the first matching fault and count one use of it."""
        for fault in self.faults:
            if fault.matches(method, path):
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                return fault
        return None

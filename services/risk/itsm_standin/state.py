"""The stand-in's tickets, kept in a JSON file that is rewritten atomically after every change."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class StandinState:
    path: Path | None
    incidents: dict[str, dict[str, Any]] = field(default_factory=dict)  # sys_id -> record
    journal: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # sys_id -> work notes
    next_incident: int = 10001
    issues: dict[str, dict[str, Any]] = field(default_factory=dict)  # issue key -> issue
    comments: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # issue key -> comments
    next_issue: int = 10000
    deliveries: dict[str, dict[str, Any]] = field(default_factory=dict)  # delivery id -> webhook payload
    hook_tickets: dict[str, str] = field(default_factory=dict)  # finding id -> webhook ticket reference

    @classmethod
    def open(cls, path: Path | None) -> StandinState:
        state = cls(path)
        if path is not None and path.exists():
            saved = json.loads(path.read_text())
            for name in ("incidents", "journal", "next_incident", "issues", "comments", "next_issue"):
                setattr(state, name, saved[name])
            state.deliveries = saved.get("deliveries", {})
            state.hook_tickets = saved.get("hook_tickets", {})
        return state

    def save(self) -> None:
        if self.path is None:
            return
        document = {
            "incidents": self.incidents,
            "journal": self.journal,
            "next_incident": self.next_incident,
            "issues": self.issues,
            "comments": self.comments,
            "next_issue": self.next_issue,
            "deliveries": self.deliveries,
            "hook_tickets": self.hook_tickets,
        }
        temporary = self.path.with_suffix(".tmp")
        with temporary.open("w") as handle:
            json.dump(document, handle)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(self.path)

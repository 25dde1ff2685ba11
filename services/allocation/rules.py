"""Allocation rules: ordered matchers from usage attribution keys to a team and cost centre.

The rules file is YAML::

    rules:
      - id: document-ai
        match: {provider: openai, project_id: proj_123}
        allocate: {team: document-ai, cost_centre: CC-4100, use_case: document-extraction, environment: prod}

All conditions of a rule must hold (tags compare keys and values exactly, unicode
included); the first rule that matches wins. Cost that no rule matches goes to the
explicit ``unallocated`` team and cost centre, never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from shared.events import Allocation, UsageDimensions

UNALLOCATED = "unallocated"
MATCH_KEYS = ("provider", "project_id", "api_key_id", "workspace_id", "user_id", "account_id", "resource_id", "tags")
ALLOCATE_KEYS = ("team", "cost_centre", "use_case", "environment")


class RulesError(ValueError):
    """The allocation rules file is invalid; the message names the rule and field."""


@dataclass(frozen=True, slots=True)
class AllocationRule:
    rule_id: str
    conditions: dict[str, str]
    tags: dict[str, str]
    allocation: Allocation

    def matches(self, provider: str, dimensions: UsageDimensions) -> bool:
        values = dimensions.model_dump()
        values["provider"] = provider
        if any(values.get(key) != expected for key, expected in self.conditions.items()):
            return False
        return all(dimensions.tags.get(key) == expected for key, expected in self.tags.items())


UNALLOCATED_ALLOCATION = Allocation(team=UNALLOCATED, cost_centre=UNALLOCATED, rule_id=UNALLOCATED)


class AllocationRules:
    def __init__(self, rules: list[AllocationRule]) -> None:
        self.rules = rules

    @classmethod
    def empty(cls) -> AllocationRules:
        return cls([])

    @classmethod
    def load(cls, path: Path) -> AllocationRules:
        try:
            document = yaml.safe_load(path.read_text())
        except yaml.YAMLError as error:
            raise RulesError(f"{path}: not valid YAML: {error}") from None
        if not isinstance(document, dict) or not isinstance(document.get("rules"), list):
            raise RulesError(f"{path}: must be a mapping with a 'rules' list")
        rules: list[AllocationRule] = []
        seen: set[str] = set()
        for index, entry in enumerate(document["rules"]):
            rule = _parse_rule(entry, f"{path}: rules[{index}]")
            if rule.rule_id in seen:
                raise RulesError(f"{path}: rules[{index}].id: {rule.rule_id!r} is used twice")
            seen.add(rule.rule_id)
            rules.append(rule)
        return cls(rules)

    def allocate(self, provider: str, dimensions: UsageDimensions) -> Allocation:
        for rule in self.rules:
            if rule.matches(provider, dimensions):
                return rule.allocation
        return UNALLOCATED_ALLOCATION


def _parse_rule(entry: Any, where: str) -> AllocationRule:
    if not isinstance(entry, dict):
        raise RulesError(f"{where}: must be a mapping")
    rule_id = entry.get("id")
    if not isinstance(rule_id, str) or not rule_id or rule_id == UNALLOCATED:
        raise RulesError(f"{where}.id: must be a non-empty string other than {UNALLOCATED!r}")
    match = entry.get("match")
    if not isinstance(match, dict) or not match:
        raise RulesError(f"{where}.match: must be a non-empty mapping")
    unknown = sorted(set(match) - set(MATCH_KEYS))
    if unknown:
        raise RulesError(f"{where}.match: unknown keys {', '.join(unknown)}; allowed: {', '.join(MATCH_KEYS)}")
    tags = match.get("tags") or {}
    if not isinstance(tags, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
        raise RulesError(f"{where}.match.tags: must map strings to strings")
    conditions = {key: value for key, value in match.items() if key != "tags"}
    for key, value in conditions.items():
        if not isinstance(value, str) or not value:
            raise RulesError(f"{where}.match.{key}: must be a non-empty string")
    allocate = entry.get("allocate")
    if not isinstance(allocate, dict):
        raise RulesError(f"{where}.allocate: must be a mapping")
    unknown = sorted(set(allocate) - set(ALLOCATE_KEYS))
    if unknown:
        raise RulesError(f"{where}.allocate: unknown keys {', '.join(unknown)}; allowed: {', '.join(ALLOCATE_KEYS)}")
    for required in ("team", "cost_centre"):
        if not isinstance(allocate.get(required), str) or not allocate[required]:
            raise RulesError(f"{where}.allocate.{required}: must be a non-empty string")
    allocation = Allocation(
        team=allocate["team"],
        cost_centre=allocate["cost_centre"],
        use_case=allocate.get("use_case"),
        environment=allocate.get("environment"),
        rule_id=rule_id,
    )
    return AllocationRule(rule_id=rule_id, conditions=conditions, tags=dict(tags), allocation=allocation)

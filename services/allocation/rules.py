"""Allocation rules: ordered matchers from usage attribution keys to an owner, or to a shared-cost pool.

The rules file is YAML::

    owners:                       # named owners that pools split cost between
      search: {team: search, cost_centre: CC-1, product: search}
    pools:                        # shared costs: each pool splits between owners or other pools
      ai-gateway: {method: proportional, metric: tokens, targets: [search, platform-products]}
      platform-products: {method: fixed, targets: {search: "60", chat: "40"}}
    rules:
      - id: document-ai
        match: {provider: openai, project_id: proj_123}
        allocate: {team: document-ai, cost_centre: CC-4100, use_case: document-extraction, environment: prod}
      - id: gateway
        match: {resource_id: gw-1}
        split: ai-gateway

All conditions of a rule must hold (tags compare keys and values exactly, unicode
included); the first rule that matches wins. Cost that no rule matches goes to the
explicit ``unallocated`` team and cost centre, never dropped.

Pools split ``even``ly, by ``fixed`` percentages that add up to 100, or in
``proportional`` to a usage metric of each target in the same month (``tokens``,
``requests``, ``cost``, or a usage bucket such as ``gpu_seconds``). Pools may name
pools, as long as no pool reaches itself. When every weight of a proportional
split is zero the split falls back to even, so no cost is ever dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path
from typing import Any

import yaml

from shared.events import Allocation, UsageBucket, UsageDimensions

UNALLOCATED = "unallocated"
MATCH_KEYS = ("provider", "project_id", "api_key_id", "workspace_id", "user_id", "account_id", "resource_id", "tags")
ALLOCATE_KEYS = ("team", "cost_centre", "use_case", "environment", "product")
SPLIT_METHODS = ("even", "fixed", "proportional")
SPLIT_METRICS = ("tokens", "requests", "cost", *(bucket.value for bucket in UsageBucket))


class RulesError(ValueError):
    """The allocation rules file is invalid; the message names the rule and field."""


@dataclass(frozen=True, slots=True)
class AllocationRule:
    rule_id: str
    conditions: dict[str, str]
    tags: dict[str, str]
    allocation: Allocation
    pool: str | None = None

    def matches(self, provider: str, dimensions: UsageDimensions) -> bool:
        values = dimensions.model_dump()
        values["provider"] = provider
        if any(values.get(key) != expected for key, expected in self.conditions.items()):
            return False
        return all(dimensions.tags.get(key) == expected for key, expected in self.tags.items())


UNALLOCATED_ALLOCATION = Allocation(team=UNALLOCATED, cost_centre=UNALLOCATED, rule_id=UNALLOCATED)


@dataclass(frozen=True, slots=True)
class Pool:
    """A shared cost: how it splits between its targets (owner or pool names)."""

    pool_id: str
    method: str
    targets: tuple[str, ...]
    percents: tuple[Decimal, ...] = ()
    metric: str | None = None


@dataclass(frozen=True, slots=True)
class PlannedShare:
    owner: str
    allocation: Allocation
    weight: Fraction
    basis: str


@dataclass
class AllocationRules:
    rules: list[AllocationRule]
    owners: dict[str, Allocation] = field(default_factory=dict)
    pools: dict[str, Pool] = field(default_factory=dict)
    text: str = ""

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
        owners = _parse_owners(document.get("owners") or {}, f"{path}: owners")
        pools = _parse_pools(document.get("pools") or {}, f"{path}: pools")
        _check_pools(pools, owners, f"{path}: pools")
        rules: list[AllocationRule] = []
        seen: set[str] = set()
        for index, entry in enumerate(document["rules"]):
            rule = _parse_rule(entry, f"{path}: rules[{index}]")
            if rule.rule_id in seen:
                raise RulesError(f"{path}: rules[{index}].id: {rule.rule_id!r} is used twice")
            if rule.pool is not None and rule.pool not in pools:
                raise RulesError(f"{path}: rules[{index}].split: no pool named {rule.pool!r}")
            seen.add(rule.rule_id)
            rules.append(rule)
        return cls(rules, owners, pools, text=path.read_text())

    def match(self, provider: str, dimensions: UsageDimensions) -> AllocationRule | None:
        for rule in self.rules:
            if rule.matches(provider, dimensions):
                return rule
        return None

    def allocate(self, provider: str, dimensions: UsageDimensions) -> Allocation:
        """Return the owner of usage that is not split: the first matching rule's, else unallocated."""
        rule = self.match(provider, dimensions)
        return rule.allocation if rule is not None else UNALLOCATED_ALLOCATION

    def proportional_metrics(self, pool_id: str) -> set[str]:
        """Return the metrics that proportional pools under ``pool_id`` weigh by."""
        pool = self.pools[pool_id]
        found = {pool.metric} if pool.method == "proportional" and pool.metric else set()
        for target in pool.targets:
            if target in self.pools:
                found |= self.proportional_metrics(target)
        return found

    def plan_split(self, pool_id: str, metrics: Mapping[tuple[str, str], Decimal]) -> list[PlannedShare]:
        """Expand a pool into owner shares with exact weights that add up to 1.

        ``metrics`` maps (owner name, metric) to that owner's usage in the cost's month; owners
        absent from it count as zero. Nested pools multiply their weights, and an owner reached
        through several pools gets one share with the weights added.
        """
        expanded: dict[str, tuple[Fraction, list[str]]] = {}
        for owner, weight, path in self._expand(pool_id, Fraction(1), metrics, [pool_id]):
            previous, paths = expanded.get(owner, (Fraction(0), []))
            expanded[owner] = (previous + weight, [*paths, " > ".join(path)])
        return [
            PlannedShare(owner, self.owners[owner], weight, f"split {'; '.join(paths)}")
            for owner, (weight, paths) in expanded.items()
            if weight > 0
        ]

    def _expand(
        self, pool_id: str, scale: Fraction, metrics: Mapping[tuple[str, str], Decimal], path: list[str]
    ) -> list[tuple[str, Fraction, list[str]]]:
        pool = self.pools[pool_id]
        weights = self._target_weights(pool, metrics)
        found: list[tuple[str, Fraction, list[str]]] = []
        for target, weight in zip(pool.targets, weights, strict=True):
            label = f"{target} ({_describe(pool, weight)})"
            if target in self.pools:
                found.extend(self._expand(target, scale * weight, metrics, [*path, label]))
            else:
                found.append((target, scale * weight, [*path, label]))
        return found

    def _target_weights(self, pool: Pool, metrics: Mapping[tuple[str, str], Decimal]) -> list[Fraction]:
        count = len(pool.targets)
        if pool.method == "fixed":
            return [Fraction(percent) / 100 for percent in pool.percents]
        if pool.method == "proportional" and pool.metric is not None:
            values = [Fraction(self._metric_of(target, pool.metric, metrics)) for target in pool.targets]
            total = sum(values, Fraction(0))
            if total > 0:
                return [value / total for value in values]
        return [Fraction(1, count)] * count  # even, and the fallback when every weight is zero

    def _metric_of(self, target: str, metric: str, metrics: Mapping[tuple[str, str], Decimal]) -> Decimal:
        if target in self.pools:
            return sum((self._metric_of(inner, metric, metrics) for inner in self.pools[target].targets), Decimal(0))
        return max(metrics.get((target, metric), Decimal(0)), Decimal(0))

    def owner_name(self, allocation: Allocation) -> str | None:
        """Return the name of the owner with this team and cost centre, if one is declared."""
        for name, owner in self.owners.items():
            if (owner.team, owner.cost_centre) == (allocation.team, allocation.cost_centre):
                return name
        return None


def _describe(pool: Pool, weight: Fraction) -> str:
    percent = Decimal(weight.numerator) * 100 / Decimal(weight.denominator)
    return f"{pool.method} {percent.quantize(Decimal('0.01'))}%"


def _parse_owners(entries: Any, where: str) -> dict[str, Allocation]:
    if not isinstance(entries, dict):
        raise RulesError(f"{where}: must be a mapping of owner names to owners")
    owners: dict[str, Allocation] = {}
    for name, entry in entries.items():
        owners[str(name)] = _parse_allocation(entry, f"{where}.{name}", rule_id=f"owner:{name}")
    return owners


def _parse_pools(entries: Any, where: str) -> dict[str, Pool]:
    if not isinstance(entries, dict):
        raise RulesError(f"{where}: must be a mapping of pool names to pools")
    pools: dict[str, Pool] = {}
    for name, entry in entries.items():
        place = f"{where}.{name}"
        if not isinstance(entry, dict):
            raise RulesError(f"{place}: must be a mapping")
        method = entry.get("method")
        if method not in SPLIT_METHODS:
            raise RulesError(f"{place}.method: must be one of {', '.join(SPLIT_METHODS)}, got {method!r}")
        targets = entry.get("targets")
        if method == "fixed":
            if not isinstance(targets, dict) or not targets:
                raise RulesError(f"{place}.targets: a fixed split maps each target to a percentage")
            percents = tuple(_percent(value, f"{place}.targets.{target}") for target, value in targets.items())
            if sum(percents, Decimal(0)) != 100:
                raise RulesError(f"{place}.targets: percentages must add up to exactly 100, got {sum(percents)}")
            names = tuple(str(target) for target in targets)
        else:
            if not isinstance(targets, list) or not targets or not all(isinstance(t, str) for t in targets):
                raise RulesError(f"{place}.targets: must be a non-empty list of owner or pool names")
            names, percents = tuple(targets), ()
        if len(set(names)) != len(names):
            raise RulesError(f"{place}.targets: a target is listed twice")
        metric = entry.get("metric")
        if method == "proportional" and metric not in SPLIT_METRICS:
            raise RulesError(f"{place}.metric: must be one of {', '.join(SPLIT_METRICS)}, got {metric!r}")
        pools[str(name)] = Pool(str(name), method, names, percents, metric if method == "proportional" else None)
    return pools


def _percent(value: Any, where: str) -> Decimal:
    if isinstance(value, float):
        raise RulesError(f'{where}: write the percentage as a quoted string, such as "12.5"')
    try:
        percent = Decimal(str(value))
    except InvalidOperation:
        raise RulesError(f"{where}: not a number: {value!r}") from None
    if not percent.is_finite() or percent <= 0:
        raise RulesError(f"{where}: must be a positive percentage, got {value!r}")
    return percent


def _check_pools(pools: dict[str, Pool], owners: dict[str, Allocation], where: str) -> None:
    for pool in pools.values():
        for target in pool.targets:
            if target not in pools and target not in owners:
                raise RulesError(f"{where}.{pool.pool_id}.targets: {target!r} is neither an owner nor a pool")
            if target in pools and target in owners:
                raise RulesError(f"{where}.{pool.pool_id}.targets: {target!r} is both an owner and a pool")

    def visit(pool_id: str, trail: list[str]) -> None:
        if pool_id in trail:
            cycle = " > ".join([*trail[trail.index(pool_id) :], pool_id])
            raise RulesError(f"{where}: pools form a cycle: {cycle}")
        for target in pools[pool_id].targets:
            if target in pools:
                visit(target, [*trail, pool_id])

    for pool_id in pools:
        visit(pool_id, [])


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
    pool = entry.get("split")
    if pool is not None:
        if "allocate" in entry:
            raise RulesError(f"{where}: give either allocate or split, not both")
        if not isinstance(pool, str) or not pool:
            raise RulesError(f"{where}.split: must name a pool")
        shared = Allocation(team=f"pool:{pool}", cost_centre=f"pool:{pool}", rule_id=rule_id)
        return AllocationRule(rule_id=rule_id, conditions=conditions, tags=dict(tags), allocation=shared, pool=pool)
    allocation = _parse_allocation(entry.get("allocate"), f"{where}.allocate", rule_id=rule_id)
    return AllocationRule(rule_id=rule_id, conditions=conditions, tags=dict(tags), allocation=allocation)


def _parse_allocation(allocate: Any, where: str, *, rule_id: str) -> Allocation:
    if not isinstance(allocate, dict):
        raise RulesError(f"{where}: must be a mapping")
    unknown = sorted(set(allocate) - set(ALLOCATE_KEYS))
    if unknown:
        raise RulesError(f"{where}: unknown keys {', '.join(unknown)}; allowed: {', '.join(ALLOCATE_KEYS)}")
    for required in ("team", "cost_centre"):
        if not isinstance(allocate.get(required), str) or not allocate[required]:
            raise RulesError(f"{where}.{required}: must be a non-empty string")
    return Allocation(
        team=allocate["team"],
        cost_centre=allocate["cost_centre"],
        use_case=allocate.get("use_case"),
        environment=allocate.get("environment"),
        product=allocate.get("product"),
        rule_id=rule_id,
    )

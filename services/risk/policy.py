"""Policy as code: which AI providers, models and regions each team may use for each data classification.

The policy file is YAML::

    classifications:                 # the data classification of each team's and use case's usage
      default: internal
      teams: {customer-support: confidential}
      use_cases: {support-assistant: confidential}   # a use case entry wins over its team's
    rules:
      - id: internal-data
        classifications: [public, internal]
        teams: ["*"]                  # the default; or a list of team names
        allow:
          - provider: openai
            models: ["gpt-4o*", "gpt-5*"]      # globs over the reported and the catalogue model id
          - provider: azure
            services: ["Azure Machine Learning"]
      - id: confidential-data
        classifications: [confidential]
        allow:
          - {provider: anthropic, models: ["claude-sonnet-4-5*"], regions: [global, us]}
    exceptions:
      - id: support-opus-trial
        team: customer-support
        allow: {provider: anthropic, models: ["claude-opus-4-6*"]}
        from: "2025-07-01"            # first and last day it applies, in the tenant's time zone
        until: "2026-10-31"
        approved_by: ciso@example.com
        reason: Evaluate Opus on escalated tickets

Usage is compliant when an allow entry of a rule for its classification and team matches it, or an
exception for its team matches it on the day the usage happened. An allow entry that omits ``services``,
``models`` or ``regions`` accepts any value there, including none reported. An entry that lists them rejects
usage that does not report that value. A provider that no allow entry of any rule or exception names is not a policy
violation but shadow AI: the policy does not know the vendor at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import yaml

ANY = "*"
NO_RULE = "(no rule)"


class PolicyError(ValueError):
    """The policy file is invalid; the message names the entry and field."""


@dataclass(frozen=True, slots=True)
class UsageFacts:
    """The facts of one cost share that the policy checks."""

    team: str
    use_case: str | None
    provider: str
    service: str | None
    model: str | None
    priced_model: str | None
    region: str | None
    day: date


@dataclass(frozen=True, slots=True)
class AllowEntry:
    provider: str
    services: tuple[str, ...] | None
    models: tuple[str, ...] | None
    regions: tuple[str, ...] | None

    def names_vendor(self, provider: str, service: str | None) -> bool:
        if self.provider != provider.lower():
            return False
        return self.services is None or _any_glob(self.services, service)

    def mismatch(self, usage: UsageFacts) -> str | None:
        """Return why this entry does not allow the usage, or None when it does."""
        if self.provider != usage.provider.lower():
            return f"provider {usage.provider} is not approved"
        if self.services is not None and not _any_glob(self.services, usage.service):
            return f"service {usage.service or '(not reported)'} is not in {', '.join(self.services)}"
        if self.models is not None and not (
            _any_glob(self.models, usage.model) or _any_glob(self.models, usage.priced_model)
        ):
            return f"model {usage.model or '(not reported)'} is not in {', '.join(self.models)}"
        if self.regions is not None and not _any_glob(self.regions, usage.region):
            return f"region {usage.region or '(not reported)'} is not in {', '.join(self.regions)}"
        return None


@dataclass(frozen=True, slots=True)
class Rule:
    rule_id: str
    classifications: tuple[str, ...]
    teams: tuple[str, ...]
    allow: tuple[AllowEntry, ...]

    def applies(self, classification: str, team: str) -> bool:
        return classification in self.classifications and (ANY in self.teams or team in self.teams)


@dataclass(frozen=True, slots=True)
class PolicyException:
    exception_id: str
    team: str
    allow: AllowEntry
    starts: date | None
    until: date
    approved_by: str
    reason: str

    def covers(self, usage: UsageFacts) -> bool:
        in_time = (self.starts is None or self.starts <= usage.day) and usage.day <= self.until
        return in_time and self.team in (ANY, usage.team) and self.allow.mismatch(usage) is None


@dataclass(frozen=True, slots=True)
class Violation:
    rule: str  # the rule ids that applied, joined with '+', or NO_RULE
    classification: str
    reason: str


class Policy:
    def __init__(
        self,
        rules: list[Rule],
        exceptions: list[PolicyException],
        default_classification: str,
        team_classifications: dict[str, str],
        use_case_classifications: dict[str, str],
    ) -> None:
        self.rules = rules
        self.exceptions = exceptions
        self.default_classification = default_classification
        self.team_classifications = team_classifications
        self.use_case_classifications = use_case_classifications

    @classmethod
    def load(cls, path: Path) -> Policy:
        try:
            document = yaml.safe_load(path.read_text())
        except yaml.YAMLError as error:
            raise PolicyError(f"{path}: not valid YAML: {error}") from None
        if not isinstance(document, dict) or not isinstance(document.get("rules"), list):
            raise PolicyError(f"{path}: must be a mapping with a 'rules' list")
        return cls.parse(document, str(path))

    @classmethod
    def parse(cls, document: dict[str, Any], where: str) -> Policy:
        classes = document.get("classifications") or {}
        if not isinstance(classes, dict):
            raise PolicyError(f"{where}: classifications: must be a mapping")
        default = classes.get("default", "internal")
        if not isinstance(default, str) or not default:
            raise PolicyError(f"{where}: classifications.default: must be a non-empty string")
        teams = _string_map(classes.get("teams"), f"{where}: classifications.teams")
        use_cases = _string_map(classes.get("use_cases"), f"{where}: classifications.use_cases")
        rules = [_rule(entry, f"{where}: rules[{index}]") for index, entry in enumerate(document["rules"])]
        raw_exceptions = document.get("exceptions") or []
        if not isinstance(raw_exceptions, list):
            raise PolicyError(f"{where}: exceptions: must be a list")
        exceptions = [_exception(entry, f"{where}: exceptions[{index}]") for index, entry in enumerate(raw_exceptions)]
        ids = [rule.rule_id for rule in rules] + [item.exception_id for item in exceptions]
        duplicates = sorted({name for name in ids if ids.count(name) > 1})
        if duplicates:
            raise PolicyError(f"{where}: rule and exception ids used twice: {', '.join(duplicates)}")
        return cls(rules, exceptions, default, teams, use_cases)

    def classification_of(self, team: str, use_case: str | None) -> str:
        if use_case is not None and use_case in self.use_case_classifications:
            return self.use_case_classifications[use_case]
        return self.team_classifications.get(team, self.default_classification)

    def lists_vendor(self, provider: str, service: str | None) -> bool:
        """Tell whether any rule or exception names this provider (and service), for any team or classification."""
        entries = [entry for rule in self.rules for entry in rule.allow] + [item.allow for item in self.exceptions]
        return any(entry.names_vendor(provider, service) for entry in entries)

    def check(self, usage: UsageFacts) -> Violation | None:
        """Return the violation of one usage, or None when a rule or a current exception allows it."""
        classification = self.classification_of(usage.team, usage.use_case)
        applicable = [rule for rule in self.rules if rule.applies(classification, usage.team)]
        reasons: list[str] = []
        for rule in applicable:
            mismatches = [entry.mismatch(usage) for entry in rule.allow]
            if any(mismatch is None for mismatch in mismatches):
                return None
            same_provider = [
                m for entry, m in zip(rule.allow, mismatches, strict=True) if entry.provider == usage.provider.lower()
            ]
            reasons.append(f"{rule.rule_id}: {(same_provider or mismatches or ['allows nothing'])[0]}")
        if any(item.covers(usage) for item in self.exceptions):
            return None
        for item in self.exceptions:
            if item.team in (ANY, usage.team) and item.allow.mismatch(usage) is None:
                when = f"expired after {item.until}" if usage.day > item.until else f"starts on {item.starts}"
                reasons.append(f"exception {item.exception_id} {when}")
        if not applicable:
            reasons.insert(0, f"no rule approves AI use by team {usage.team} for {classification} data")
        rule_ids = "+".join(rule.rule_id for rule in applicable) or NO_RULE
        return Violation(rule=rule_ids, classification=classification, reason="; ".join(reasons))


def _any_glob(patterns: tuple[str, ...], value: str | None) -> bool:
    if value is None:
        return False
    lowered = value.lower()
    return any(fnmatchcase(lowered, pattern.lower()) for pattern in patterns)


def _string_map(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise PolicyError(f"{where}: must map names to classification names")
    return dict(value)


def _patterns(entry: dict[str, Any], name: str, where: str) -> tuple[str, ...] | None:
    if name not in entry:
        return None
    value = entry[name]
    if not isinstance(value, list) or not value or not all(isinstance(item, str) and item for item in value):
        raise PolicyError(f"{where}.{name}: must be a non-empty list of names or globs")
    return tuple(value)


def _allow(entry: Any, where: str) -> AllowEntry:
    if not isinstance(entry, dict):
        raise PolicyError(f"{where}: must be a mapping")
    unknown = sorted(set(entry) - {"provider", "services", "models", "regions"})
    if unknown:
        raise PolicyError(f"{where}: unknown keys {', '.join(unknown)}; allowed: provider, services, models, regions")
    provider = entry.get("provider")
    if not isinstance(provider, str) or not provider:
        raise PolicyError(f"{where}.provider: must be a non-empty string")
    return AllowEntry(
        provider=provider.lower(),
        services=_patterns(entry, "services", where),
        models=_patterns(entry, "models", where),
        regions=_patterns(entry, "regions", where),
    )


def _rule(entry: Any, where: str) -> Rule:
    if not isinstance(entry, dict):
        raise PolicyError(f"{where}: must be a mapping")
    rule_id = entry.get("id")
    if not isinstance(rule_id, str) or not rule_id:
        raise PolicyError(f"{where}.id: must be a non-empty string")
    classifications = _patterns(entry, "classifications", where)
    if classifications is None:
        raise PolicyError(f"{where}.classifications: must list the data classifications the rule covers")
    teams = _patterns(entry, "teams", where) or (ANY,)
    allow = entry.get("allow")
    if not isinstance(allow, list) or not allow:
        raise PolicyError(f"{where}.allow: must be a non-empty list of approved providers")
    entries = tuple(_allow(item, f"{where}.allow[{index}]") for index, item in enumerate(allow))
    return Rule(rule_id, classifications, teams, entries)


def _date(value: Any, where: str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise PolicyError(f"{where}: must be a date as YYYY-MM-DD, got {value!r}") from None


def _exception(entry: Any, where: str) -> PolicyException:
    if not isinstance(entry, dict):
        raise PolicyError(f"{where}: must be a mapping")
    exception_id = entry.get("id")
    if not isinstance(exception_id, str) or not exception_id:
        raise PolicyError(f"{where}.id: must be a non-empty string")
    if "until" not in entry:
        raise PolicyError(f"{where}.until: every exception needs the last day it applies")
    for name in ("approved_by", "reason"):
        if not isinstance(entry.get(name), str) or not entry[name].strip():
            raise PolicyError(f"{where}.{name}: must be a non-empty string")
    team = entry.get("team", ANY)
    if not isinstance(team, str) or not team:
        raise PolicyError(f"{where}.team: must be a team name or '*'")
    starts = _date(entry["from"], f"{where}.from") if "from" in entry else None
    until = _date(entry["until"], f"{where}.until")
    if starts is not None and starts > until:
        raise PolicyError(f"{where}: from {starts} is after until {until}")
    return PolicyException(
        exception_id=exception_id,
        team=team,
        allow=_allow(entry.get("allow"), f"{where}.allow"),
        starts=starts,
        until=until,
        approved_by=entry["approved_by"],
        reason=entry["reason"],
    )

"""Allocation rules: first match wins, exact tag matching, and an explicit unallocated owner."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.allocation.rules import UNALLOCATED, AllocationRules, RulesError
from shared.events import UsageDimensions
from tests.conftest import EXAMPLES

RULES = AllocationRules.load(EXAMPLES / "config" / "allocation_rules.yaml")


def test_project_rule_matches() -> None:
    allocation = RULES.allocate("openai", UsageDimensions(project_id="proj_4BhNtYH0z7dWbBtzhibxa65W"))
    assert allocation.team == "document-ai"
    assert allocation.cost_centre == "CC-4100"
    assert allocation.use_case == "document-extraction"
    assert allocation.rule_id == "document-ai-project"


def test_provider_condition_must_hold() -> None:
    allocation = RULES.allocate("anthropic", UsageDimensions(project_id="proj_4BhNtYH0z7dWbBtzhibxa65W"))
    assert allocation.team == UNALLOCATED


def test_no_match_is_unallocated() -> None:
    allocation = RULES.allocate("openai", UsageDimensions())
    assert allocation.team == UNALLOCATED
    assert allocation.cost_centre == UNALLOCATED
    assert allocation.rule_id == UNALLOCATED


def test_tags_match_exactly() -> None:
    exact = RULES.allocate("aws", UsageDimensions(tags={"application": "BrightPathMatrix"}))
    other_case = RULES.allocate("aws", UsageDimensions(tags={"application": "brightpathmatrix"}))
    padded_key = RULES.allocate("azure", UsageDimensions(tags={" ComputeType": "Compute Instance"}))
    assert exact.team == "ml-platform"
    assert other_case.team == UNALLOCATED
    assert padded_key.team == UNALLOCATED


def test_first_matching_rule_wins(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        "rules:\n"
        "  - {id: a, match: {api_key_id: k1}, allocate: {team: first, cost_centre: C1}}\n"
        "  - {id: b, match: {api_key_id: k1}, allocate: {team: second, cost_centre: C2}}\n"
    )
    assert AllocationRules.load(path).allocate("openai", UsageDimensions(api_key_id="k1")).team == "first"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules: [{id: a, match: {colour: red}, allocate: {team: t, cost_centre: c}}]", "unknown keys colour"),
        ("rules: [{id: a, match: {api_key_id: k}, allocate: {team: t}}]", "allocate.cost_centre"),
        ("rules: [{id: a, match: {}, allocate: {team: t, cost_centre: c}}]", "match: must be a non-empty mapping"),
        (
            "rules: [{id: a, match: {api_key_id: k}, allocate: {team: t, cost_centre: c}},"
            " {id: a, match: {api_key_id: k}, allocate: {team: t, cost_centre: c}}]",
            "used twice",
        ),
        ("rules: {", "not valid YAML"),
    ],
)
def test_invalid_rules_name_the_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    with pytest.raises(RulesError, match=message):
        AllocationRules.load(path)

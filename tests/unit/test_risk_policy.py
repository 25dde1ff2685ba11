"""Policy as code: approvals per classification and team, expiring exceptions, and violations naming the rule."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from services.risk.policy import NO_RULE, Policy, PolicyError, UsageFacts
from services.risk.vendors import AiVendors
from tests.conftest import EXAMPLES

POLICY = Policy.load(EXAMPLES / "config" / "policy.yaml")


def usage(
    *,
    team: str = "customer-support",
    use_case: str | None = "support-assistant",
    provider: str = "anthropic",
    model: str | None = "claude-opus-4-6",
    priced_model: str | None = None,
    service: str | None = "messages",
    region: str | None = "global",
    day: date = date(2026, 11, 2),
) -> UsageFacts:
    return UsageFacts(team, use_case, provider, service, model, priced_model, region, day)


class TestPolicyCheck:
    def test_expired_exception_is_a_violation(self) -> None:
        violation = POLICY.check(usage())

        assert violation is not None
        assert violation.rule == "confidential-data"
        assert violation.classification == "confidential"
        assert violation.reason == (
            "confidential-data: model claude-opus-4-6 is not in claude-sonnet-4-5*; "
            "exception support-opus-evaluation expired after 2026-10-31"
        )

    def test_exception_covers_its_dates(self) -> None:
        assert POLICY.check(usage(day=date(2025, 8, 1))) is None
        assert POLICY.check(usage(day=date(2026, 10, 31))) is None  # the last day still counts

    def test_exception_not_yet_started(self) -> None:
        violation = POLICY.check(usage(day=date(2025, 6, 30)))

        assert violation is not None
        assert violation.reason.endswith("exception support-opus-evaluation starts on 2025-07-01")

    def test_approved_model_and_region(self) -> None:
        assert POLICY.check(usage(model="claude-sonnet-4-5-20250929")) is None

    def test_region_outside_the_rule(self) -> None:
        violation = POLICY.check(usage(model="claude-sonnet-4-5-20250929", region="us-east-1"))
        unreported = POLICY.check(usage(model="claude-sonnet-4-5-20250929", region=None))

        assert violation is not None and violation.reason == "confidential-data: region us-east-1 is not in global"
        assert unreported is not None
        assert unreported.reason == "confidential-data: region (not reported) is not in global"

    def test_catalogue_model_id_matches_too(self) -> None:
        # The reported id is dated; the catalogue id after alias resolution is what the glob names.
        assert POLICY.check(usage(team="research", use_case=None, provider="openai", model="gpt-4o-2024-08-06",
                                  priced_model="gpt-4o", region=None)) is None  # fmt: skip

    def test_unapproved_model_for_internal_data(self) -> None:
        violation = POLICY.check(usage(team="document-ai", use_case="document-extraction", provider="openai",
                                       model="o3", region=None))  # fmt: skip

        assert violation is not None
        assert violation.rule == "internal-and-public-data"
        assert violation.classification == "internal"
        assert violation.reason == "internal-and-public-data: model o3 is not in gpt-4o*, gpt-5*"

    def test_use_case_classification_wins_over_team(self) -> None:
        # research is public, but the support-assistant use case is confidential.
        violation = POLICY.check(usage(team="research", use_case="support-assistant", provider="openai",
                                       model="gpt-4o", region=None))  # fmt: skip

        assert violation is not None
        assert violation.classification == "confidential"
        assert violation.reason == "confidential-data: provider openai is not approved"

    def test_classification_without_rule(self) -> None:
        policy = Policy.parse(
            {
                "classifications": {"teams": {"legal": "restricted"}},
                "rules": [{"id": "open", "classifications": ["internal"], "allow": [{"provider": "openai"}]}],
            },
            "inline",
        )

        violation = policy.check(usage(team="legal", use_case=None, provider="openai", model="gpt-4o"))

        assert violation is not None
        assert violation.rule == NO_RULE
        assert violation.reason == "no rule approves AI use by team legal for restricted data"


class TestVendors:
    def test_listed_vendors(self) -> None:
        assert POLICY.lists_vendor("openai", "completions")
        assert POLICY.lists_vendor("Anthropic", "messages")
        assert not POLICY.lists_vendor("azure", "Azure Machine Learning")

    def test_ai_lines_of_a_bill(self) -> None:
        vendors = AiVendors.load()

        assert vendors.vendor_of("azure", "Azure Machine Learning", None) == "azure-machine-learning"
        assert vendors.vendor_of("aws", "Claude 3 Haiku (Amazon Bedrock Edition)", None) == "aws-bedrock"
        assert vendors.vendor_of("aws", "Amazon Simple Queue Service", None) is None
        assert vendors.vendor_of("deepinfra", None, "llama-3-70b") == "deepinfra"  # a model makes it AI usage
        assert vendors.vendor_of("github", "github-copilot", None) == "github-copilot"


class TestPolicyFile:
    @pytest.mark.parametrize(
        ("document", "message"),
        [
            ("rules: [{id: a, classifications: [x], allow: [{provider: p}]}]\nexceptions: "
             "[{id: e, allow: {provider: p}, approved_by: me, reason: r}]", "exceptions[0].until"),
            ("rules: [{id: a, classifications: [x], allow: [{provider: p, model: m}]}]", "unknown keys model"),
            ("rules: [{id: a, allow: [{provider: p}]}]", "rules[0].classifications"),
            ("rules: [{id: a, classifications: [x], allow: [{provider: p}]}]\nexceptions: [{id: a, until: "
             "'2026-01-01', allow: {provider: p}, approved_by: me, reason: r}]", "used twice: a"),
            ("rules: [{id: a, classifications: [x], allow: [{provider: p}]}]\nexceptions: [{id: e, until: "
             "'2026-13-01', allow: {provider: p}, approved_by: me, reason: r}]", "must be a date"),
        ],
    )  # fmt: skip
    def test_invalid_policy_names_field(self, tmp_path: Path, document: str, message: str) -> None:
        path = tmp_path / "policy.yaml"
        path.write_text(document + "\n")

        with pytest.raises(PolicyError) as raised:
            Policy.load(path)

        assert message in str(raised.value)

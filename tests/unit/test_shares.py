"""Splitting costs between owners: exact shares, pools, nested pools, and properties over generated costs."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.allocation.costing import build_cost
from services.allocation.pricing import PriceBook
from services.allocation.rules import AllocationRules, RulesError
from services.allocation.shares import apportion, fractions_adding_to_one, quantum_for, split_lines
from shared.catalogue import PriceCatalogue
from shared.events import Evidence, UsageBucket, UsageDimensions, UsageRecorded

B = UsageBucket
BOOK = PriceBook(PriceCatalogue.load())

RULES_TEXT = """
owners:
  search: {team: search, cost_centre: CC-1, product: search-product}
  chat-a: {team: chat-a, cost_centre: CC-2, product: chat-product}
  chat-b: {team: chat-b, cost_centre: CC-3, product: chat-product}
pools:
  platform: {method: fixed, targets: {search: "60", chat: "40"}}
  chat: {method: even, targets: [chat-a, chat-b]}
  gateway: {method: proportional, metric: tokens, targets: [search, chat-a, chat-b]}
  gpu-pool: {method: proportional, metric: gpu_seconds, targets: [search, chat-a]}
rules:
  - {id: platform-costs, match: {resource_id: platform-1}, split: platform}
  - {id: gateway-costs, match: {resource_id: gw-1}, split: gateway}
  - {id: search-key, match: {api_key_id: key-search}, allocate: {team: search, cost_centre: CC-1}}
"""


@pytest.fixture
def rules(tmp_path: Path) -> AllocationRules:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES_TEXT)
    return AllocationRules.load(path)


def usage(quantities: dict[UsageBucket, int], *, resource_id: str, model: str = "gpt-5") -> UsageRecorded:
    at = datetime(2025, 10, 6, tzinfo=UTC)
    return UsageRecorded(
        event_id="u1",
        occurred_at=at,
        source="test",
        tenant="acme",
        correlation_id="c",
        provider="openai",
        model=model,
        period_start=at,
        period_end=at,
        dimensions=UsageDimensions(resource_id=resource_id),
        quantities={bucket: Decimal(count) for bucket, count in quantities.items()},
        evidence=Evidence(format="test"),
    )


class TestApportion:
    def test_thirds_of_a_dollar(self) -> None:
        thirds = [Fraction(1, 3)] * 3
        # 100 cents: 33 each and the one left over to the first (ties go to the earlier share)
        assert apportion(Decimal("1.00"), thirds, Decimal("0.01")) == [
            Decimal("0.34"),
            Decimal("0.33"),
            Decimal("0.33"),
        ]

    def test_sub_cent_cost_keeps_its_places(self) -> None:
        # 0.24726 has five places, so it splits in steps of 0.00001: 24,726 / 3 = 8,242 each, nothing left over
        assert quantum_for([Decimal("0.24726")], "USD") == Decimal("0.00001")
        assert apportion(Decimal("0.24726"), [Fraction(1, 3)] * 3, Decimal("0.00001")) == [Decimal("0.08242")] * 3

    def test_credit_keeps_its_sign(self) -> None:
        assert apportion(Decimal("-5.00"), [Fraction(1, 2)] * 2, Decimal("0.01")) == [Decimal("-2.5")] * 2

    def test_yen_has_no_minor_unit(self) -> None:
        assert apportion(Decimal("100"), [Fraction(1, 3)] * 3, quantum_for([Decimal("100")], "JPY")) == [
            Decimal("34"),
            Decimal("33"),
            Decimal("33"),
        ]

    def test_fractions_add_to_one(self) -> None:
        fractions = fractions_adding_to_one([Fraction(1, 3)] * 3)
        assert sum(fractions) == 1
        assert fractions == [Decimal("0.333333333334"), Decimal("0.333333333333"), Decimal("0.333333333333")]


amount_strategy = st.decimals(min_value=Decimal(0), max_value=Decimal("100000"), places=8, allow_nan=False)
weight_strategy = st.lists(st.integers(min_value=0, max_value=1000), min_size=1, max_size=6).filter(
    lambda w: sum(w) > 0
)


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(amount_strategy, min_size=1, max_size=5), weights=weight_strategy)
def test_shares_always_add_up_exactly(lines: list[Decimal], weights: list[int]) -> None:
    exact = [Fraction(weight, sum(weights)) for weight in weights]
    totals, per_line = split_lines(lines, "USD", exact)
    assert sum(totals) == sum(lines)
    for index, line in enumerate(lines):
        assert sum(parts[index] for parts in per_line) == line
        quantum = quantum_for([line], "USD")
        for share, weight in zip(per_line, exact, strict=True):
            assert share[index] >= 0
            assert abs(Fraction(share[index]) - Fraction(line) * weight) < Fraction(quantum)


@settings(max_examples=200, deadline=None)
@given(
    quantities=st.dictionaries(
        st.sampled_from([B.INPUT_UNCACHED_TOKENS, B.CACHE_READ_TOKENS, B.OUTPUT_TOKENS, B.REASONING_TOKENS]),
        st.integers(min_value=0, max_value=50_000_000),
        min_size=1,
    ),
    model=st.sampled_from(["gpt-5", "gpt-5-mini", "gpt-4o", "gpt-5-nano"]),
    resource=st.sampled_from(["platform-1", "gw-1", "none"]),
)
def test_generated_usage_costs_are_never_negative_and_split_exactly(
    quantities: dict[UsageBucket, int], model: str, resource: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("rules") / "rules.yaml"
    path.write_text(RULES_TEXT)
    rules = AllocationRules.load(path)
    built = build_cost(usage(quantities, resource_id=resource, model=model), BOOK, rules)
    cost = built.cost
    assert cost.cost is not None
    assert cost.cost.amount >= 0
    assert all(line.amount.amount >= 0 for line in cost.lines)
    assert sum(share.amount.amount for share in cost.shares if share.amount) == cost.cost.amount
    assert sum(share.fraction for share in cost.shares) == 1
    again = build_cost(usage(quantities, resource_id=resource, model=model), BOOK, rules)
    assert again.cost.model_dump(exclude={"produced_at"}) == cost.model_dump(exclude={"produced_at"})


class TestPools:
    def test_nested_fixed_and_even(self, rules: AllocationRules) -> None:
        planned = {share.owner: share.weight for share in rules.plan_split("platform", {})}
        # search 60 %; chat 40 % split evenly: 20 % each
        assert planned == {"search": Fraction(3, 5), "chat-a": Fraction(1, 5), "chat-b": Fraction(1, 5)}

    def test_platform_cost_shares(self, rules: AllocationRules) -> None:
        built = build_cost(usage({B.OUTPUT_TOKENS: 100_000}, resource_id="platform-1"), BOOK, rules)
        # gpt-5 100,000 × 10.00 / 1e6 = 1.00 USD: search 0.60, chat-a 0.20, chat-b 0.20
        shares = {share.allocation.team: share.amount.amount for share in built.cost.shares if share.amount}
        assert shares == {"search": Decimal("0.6"), "chat-a": Decimal("0.2"), "chat-b": Decimal("0.2")}
        assert built.cost.shares[0].allocation.product == "search-product"
        assert built.cost.shares[0].allocation.rule_id == "platform-costs"
        assert "platform > chat (fixed 40.00%) > chat-a (even 50.00%)" in (built.cost.shares[1].basis or "")

    def test_proportional_to_tokens(self, rules: AllocationRules) -> None:
        metrics = {("search", "tokens"): Decimal(300), ("chat-a", "tokens"): Decimal(100)}
        built = build_cost(usage({B.OUTPUT_TOKENS: 100_000}, resource_id="gw-1"), BOOK, rules, metrics)
        # 1.00 USD by tokens 300 : 100 : 0 → 0.75, 0.25; chat-b used nothing and gets no share
        shares = {share.allocation.team: share.amount.amount for share in built.cost.shares if share.amount}
        assert shares == {"search": Decimal("0.75"), "chat-a": Decimal("0.25")}

    def test_all_zero_weights_split_evenly(self, rules: AllocationRules) -> None:
        built = build_cost(usage({B.OUTPUT_TOKENS: 100_000}, resource_id="gw-1"), BOOK, rules, {})
        # no usage this month: 1.00 USD evenly over three owners, 0.34 + 0.33 + 0.33, nothing deleted
        amounts = [share.amount.amount for share in built.cost.shares if share.amount]
        assert amounts == [Decimal("0.34"), Decimal("0.33"), Decimal("0.33")]

    def test_gpu_pool_by_fractional_gpu_seconds(self, rules: AllocationRules) -> None:
        # search ran on half a GPU for an hour (1,800 GPU-seconds), chat-a on a quarter (900)
        metrics = {("search", "gpu_seconds"): Decimal(1800), ("chat-a", "gpu_seconds"): Decimal(900)}
        planned = {share.owner: share.weight for share in rules.plan_split("gpu-pool", metrics)}
        assert planned == {"search": Fraction(2, 3), "chat-a": Fraction(1, 3)}

    def test_unpriced_split_keeps_fractions(self, rules: AllocationRules) -> None:
        built = build_cost(usage({B.OUTPUT_TOKENS: 10}, resource_id="platform-1", model="gpt-9"), BOOK, rules)
        assert built.cost.cost is None
        assert [share.fraction for share in built.cost.shares] == [Decimal("0.6"), Decimal("0.2"), Decimal("0.2")]

    @pytest.mark.parametrize(
        ("pools", "message"),
        [
            ("a: {method: even, targets: [b]}\n  b: {method: even, targets: [a]}", "cycle: a > b > a"),
            ('a: {method: fixed, targets: {search: "60", chat-a: "30"}}', "add up to exactly 100, got 90"),
            ("a: {method: proportional, metric: colour, targets: [search]}", "metric: must be one of"),
            ("a: {method: even, targets: [nobody]}", "'nobody' is neither an owner nor a pool"),
            ("a: {method: fixed, targets: {search: 60.5, chat-a: 39.5}}", "quoted string"),
        ],
    )
    def test_invalid_pools_name_the_field(self, tmp_path: Path, pools: str, message: str) -> None:
        path = tmp_path / "rules.yaml"
        path.write_text(
            "owners:\n  search: {team: s, cost_centre: c}\n  chat-a: {team: a, cost_centre: c}\n"
            f"pools:\n  {pools}\nrules: []\n"
        )
        with pytest.raises(RulesError, match=message):
            AllocationRules.load(path)

    def test_tags_are_matched_exactly_with_unicode(self, tmp_path: Path) -> None:
        path = tmp_path / "rules.yaml"
        path.write_text(
            "rules:\n"
            "  - {id: café, match: {tags: {équipe: café}}, allocate: {team: café, cost_centre: C1}}\n"
            "  - {id: cafe, match: {tags: {equipe: cafe}}, allocate: {team: cafe, cost_centre: C2}}\n",
            encoding="utf-8",
        )
        rules = AllocationRules.load(path)
        assert rules.allocate("x", UsageDimensions(tags={"équipe": "café"})).team == "café"
        assert rules.allocate("x", UsageDimensions(tags={"equipe": "cafe"})).team == "cafe"
        assert rules.allocate("x", UsageDimensions(tags={"équipe": "cafe"})).team == "unallocated"
        # NFD spelling of "café" (e + combining acute) is a different tag value and is not merged
        assert rules.allocate("x", UsageDimensions(tags={"équipe": "cafe\u0301"})).team == "unallocated"

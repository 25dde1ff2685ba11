"""Savings estimates against hand-worked arithmetic on the sample's October 2025 usage."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from services.optimizer.estimates import UsageSample, batch_tier_estimate, cheaper_model_estimate
from services.optimizer.policy import OptimizerPolicy, load_alternatives
from shared.catalogue import PriceCatalogue
from shared.events import ServiceTier, UsageBucket

B = UsageBucket
CATALOGUE = PriceCatalogue.load()
ALTERNATIVES = load_alternatives()
POLICY = OptimizerPolicy(max_input_tokens_per_request=16000, max_output_tokens_per_request=12000)


def sample(day: int, requests: int | None, **quantities: int) -> UsageSample:
    return UsageSample(
        cost_event_id=f"c{day}",
        usage_event_id=f"u{day}-{requests}",
        period_start=datetime(2025, 10, day, tzinfo=UTC),
        quantities={B(name): Decimal(count) for name, count in quantities.items()},
        request_count=requests,
    )


GPT_5 = [  # the two 2025-10-06 rows of the dashboard export
    sample(6, 8, input_uncached_tokens=38072, cache_read_tokens=8192, output_tokens=60000),
    sample(6, 1, input_uncached_tokens=5783, output_tokens=16000),
]
GPT_5_MINI = [
    sample(7, 21, input_uncached_tokens=80992, output_tokens=274770),
    sample(10, 11, input_uncached_tokens=124784, output_tokens=154852),
    sample(11, 2, input_uncached_tokens=22688, output_tokens=33191),
]


def test_batch_tier_gpt_5() -> None:
    estimate = batch_tier_estimate("openai", "gpt-5", "2025-10", GPT_5, CATALOGUE)
    assert estimate is not None
    # uncached 43,855 × (1.25 − 0.625)/1e6 = 0.027409375; cached 8,192 × (0.125 − 0.0625)/1e6 = 0.000512;
    # output 76,000 × (10 − 5)/1e6 = 0.38; total 0.407921375 USD
    assert estimate.savings == Decimal("0.407921375")
    assert estimate.currency == "USD"
    assert "43,855 × (1.25 − 0.625) USD per 1,000,000 = 0.027409375 USD" in estimate.arithmetic
    assert estimate.evidence == ("u6-8", "u6-1")


def test_batch_tier_gpt_5_mini() -> None:
    estimate = batch_tier_estimate("openai", "gpt-5-mini", "2025-10", GPT_5_MINI, CATALOGUE)
    assert estimate is not None
    # uncached 80,992 + 124,784 + 22,688 = 228,464 × (0.25 − 0.125)/1e6 = 0.028558;
    # output 274,770 + 154,852 + 33,191 = 462,813 × (2 − 1)/1e6 = 0.462813; total 0.491371
    assert estimate.savings == Decimal("0.491371")


def test_batch_tier_needs_every_batch_price() -> None:
    # gpt-4o has no batch cache-read price in the catalogue, so no estimate rather than a guess.
    usage = [sample(5, 10, input_uncached_tokens=53440, cache_read_tokens=5760, output_tokens=10646)]
    assert batch_tier_estimate("openai", "gpt-4o", "2025-10", usage, CATALOGUE) is None


def test_cheaper_model_gpt_5_to_mini() -> None:
    estimate = cheaper_model_estimate(
        "openai", "gpt-5", ALTERNATIVES[("openai", "gpt-5")], ServiceTier.STANDARD, "2025-10", GPT_5, CATALOGUE, POLICY
    )
    assert estimate is not None
    # uncached 43,855 × (1.25 − 0.25)/1e6 = 0.043855; cached 8,192 × (0.125 − 0.025)/1e6 = 0.0008192;
    # output 76,000 × (10 − 2)/1e6 = 0.608; total 0.6526742
    assert estimate.savings == Decimal("0.6526742")
    # 52,047 input tokens / 9 requests = 5,783 a request; 76,000 output / 9 = 8,444 a request.
    assert "= 5783 per request" in estimate.arithmetic
    assert "= 8444 per request" in estimate.arithmetic


def test_cheaper_model_skips_long_outputs() -> None:
    # 462,813 output tokens / 34 requests = 13,612 a request, above the 12,000 limit.
    estimate = cheaper_model_estimate(
        "openai",
        "gpt-5-mini",
        ALTERNATIVES[("openai", "gpt-5-mini")],
        ServiceTier.STANDARD,
        "2025-10",
        GPT_5_MINI,
        CATALOGUE,
        POLICY,
    )
    assert estimate is None


def test_cheaper_model_needs_request_counts() -> None:
    usage = [sample(6, None, input_uncached_tokens=1000, output_tokens=100)]
    estimate = cheaper_model_estimate(
        "openai", "gpt-5", ALTERNATIVES[("openai", "gpt-5")], ServiceTier.STANDARD, "2025-10", usage, CATALOGUE, POLICY
    )
    assert estimate is None

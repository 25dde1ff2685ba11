"""Prompt caching, commitment, GPU and seat estimates against hand-worked arithmetic.

Token figures are the OpenAI dashboard export's October 2025 rows (examples/data). GPU and seat figures are
read from the DCGM exporter scrape, the OpenCost node cost and GitHub's documented Copilot seat examples in
tests/fixtures/optimizer, whose SOURCES.md names their origin.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from services.optimizer.commitments import DailyCost, commitment_estimate, nearest_rank
from services.optimizer.estimates import UsageSample, prompt_caching_estimate
from services.optimizer.gpus import BilledCost, GpuWindow, gpu_estimate
from services.optimizer.policy import (
    CommitmentOffer,
    OptimizerPolicy,
    PolicyError,
    SeatPrices,
    load_gpu_prices,
)
from services.optimizer.seats import Entitlement, Seat, SeatCost, overlapping_tools_estimate, unused_seats_estimate
from shared.catalogue import PriceCatalogue
from shared.events import RecommendationKind, ServiceTier, UsageBucket
from tests.unit.factories import at

D = Decimal
B = UsageBucket
CATALOGUE = PriceCatalogue.load()
POLICY = OptimizerPolicy()
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "optimizer"


def dcgm_value(metric: str, gpu_uuid: str) -> Decimal:
    """Read one metric of one GPU from the DCGM exporter scrape."""
    text = (FIXTURES / "dcgm_exporter_scrape_tesla_t4_trimmed.prom").read_text()
    for line in text.splitlines():
        if line.startswith(metric + "{") and f'UUID="{gpu_uuid}"' in line:
            return D(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{metric} of {gpu_uuid} is not in the scrape")


def sample(day: int, requests: int | None, **quantities: int) -> UsageSample:
    return UsageSample(
        cost_event_id=f"c{day}",
        usage_event_id=f"u{day}-{requests}",
        period_start=at(f"2025-10-{day:02d}"),
        quantities={B(name): D(count) for name, count in quantities.items()},
        request_count=requests,
    )


def caching(model: str, samples: list[UsageSample], provider: str = "openai"):  # type: ignore[no-untyped-def]
    return prompt_caching_estimate(provider, model, ServiceTier.STANDARD, "2025-10", samples, CATALOGUE, POLICY)


class TestPromptCaching:
    def test_gpt_4o(self) -> None:
        estimate = caching("gpt-4o", [sample(5, 10, input_uncached_tokens=53440, cache_read_tokens=5760)])
        assert estimate is not None
        # input 53,440 + 5,760 = 59,200 (5,920 a request); half is a repeated prefix: 29,600 tokens,
        # of which 5,760 are read from cache already: 23,840 newly cached.
        # writes: 23,840 / 11 = 2,167.3, rounded up 2,168; reads 23,840 − 2,168 = 21,672.
        # reads save 21,672 × (2.50 − 1.25) / 1e6 = 0.02709; writes cost 2,168 × (2.50 − 2.50) / 1e6 = 0.
        assert estimate.savings == D("0.02709")
        assert estimate.currency == "USD"
        assert "not yet cached: 29,600 − 5,760 − 0 = 23,840 tokens" in estimate.arithmetic
        assert "rounded up = 2,168; cache reads: 23,840 − 2,168 = 21,672" in estimate.arithmetic
        assert estimate.price_rows == (
            "openai/gpt-4o/standard/cache_read_tokens/2024-08-06",
            "openai/gpt-4o/standard/cache_write_tokens/2024-08-06",
            "openai/gpt-4o/standard/input_uncached_tokens/2024-08-06",
        )
        assert estimate.evidence == ("u5-10",)

    def test_gpt_5(self) -> None:
        samples = [
            sample(6, 8, input_uncached_tokens=38072, cache_read_tokens=8192, output_tokens=60000),
            sample(6, 1, input_uncached_tokens=5783, output_tokens=16000),
        ]
        estimate = caching("gpt-5", samples)
        assert estimate is not None
        # input 43,855 + 8,192 = 52,047; half rounded down 26,023; newly cached 26,023 − 8,192 = 17,831;
        # writes 17,831 / 11 = 1,621 exactly; reads 16,210 × (1.25 − 0.125) / 1e6 = 0.01823625.
        assert estimate.savings == D("0.01823625")

    def test_gpt_5_mini_without_any_cache_use(self) -> None:
        samples = [
            sample(7, 21, input_uncached_tokens=80992, output_tokens=274770),
            sample(10, 11, input_uncached_tokens=124784, output_tokens=154852),
            sample(11, 2, input_uncached_tokens=22688, output_tokens=33191),
        ]
        estimate = caching("gpt-5-mini", samples)
        assert estimate is not None
        # input 228,464 (6,720 a request); half 114,232; writes 114,232 / 11 = 10,384.7, up 10,385;
        # reads 103,847 × (0.25 − 0.025) / 1e6 = 0.023365575.
        assert estimate.savings == D("0.023365575")

    def test_anthropic_pays_for_cache_writes(self) -> None:
        usage = [
            UsageSample(
                "c", "u", at("2026-10-05"), {B.INPUT_UNCACHED_TOKENS: D(900000), B.CACHE_READ_TOKENS: D(100000)}, 10
            )
        ]
        estimate = prompt_caching_estimate(
            "anthropic", "claude-sonnet-4-5", ServiceTier.STANDARD, "2026-10", usage, CATALOGUE, POLICY
        )
        assert estimate is not None
        # input 1,000,000; half 500,000; newly cached 500,000 − 100,000 = 400,000;
        # writes 400,000 / 11 = 36,363.6, up 36,364; reads 363,636.
        # reads save 363,636 × (3.00 − 0.30) / 1e6 = 0.9818172;
        # writes cost 36,364 × (3.75 − 3.00) / 1e6 = 0.027273; 0.9818172 − 0.027273 = 0.9545442.
        assert estimate.savings == D("0.9545442")

    def test_caps_at_uncached_input(self) -> None:
        policy = OptimizerPolicy(caching_cacheable_share=D("0.9"))
        usage = [sample(5, 1, input_uncached_tokens=2000, cache_write_tokens=3000)]
        estimate = prompt_caching_estimate(
            "openai", "gpt-4o", ServiceTier.STANDARD, "2025-10", usage, CATALOGUE, policy
        )
        assert estimate is not None
        # input 5,000; 90% = 4,500; minus 3,000 written = 1,500 (below the 2,000 uncached, so no cap);
        # writes 1,500 / 11 = 136.4, up 137; reads 1,363 × 1.25 / 1e6 = 0.00170375.
        assert estimate.savings == D("0.00170375")

    def test_short_prompts_do_not_qualify(self) -> None:
        # 9,000 input tokens over 10 requests is 900 a request, below the 1,024 that providers cache.
        assert caching("gpt-4o", [sample(5, 10, input_uncached_tokens=9000)]) is None

    def test_already_cached_input_does_not_qualify(self) -> None:
        # 60% of the input is read from cache already, above the assumed 50% repeated prefix.
        assert caching("gpt-4o", [sample(5, 10, input_uncached_tokens=40000, cache_read_tokens=60000)]) is None

    def test_needs_request_counts(self) -> None:
        assert caching("gpt-4o", [sample(5, None, input_uncached_tokens=90000)]) is None

    def test_needs_a_cache_read_price(self) -> None:
        usage = [sample(5, 10, input_uncached_tokens=53440)]
        assert (
            prompt_caching_estimate("openai", "gpt-4o", ServiceTier.BATCH, "2025-10", usage, CATALOGUE, POLICY) is None
        )


OFFER = CommitmentOffer("acme-annual", "anthropic", D("10"), 12, "example terms")
SHORT = OptimizerPolicy(commitment_lookback_days=10, commitment_baseline_percentile=20, commitment_min_active_days=5)


def daily(amounts: list[str | None], first: date = date(2026, 10, 1)) -> list[DailyCost]:
    return [
        DailyCost(first + timedelta(days=offset), D(amount), (f"u{offset}",))
        for offset, amount in enumerate(amounts)
        if amount is not None
    ]


class TestCommitment:
    def test_sized_at_percentile(self) -> None:
        days = daily(["5", "6", None, "7", "5.5", "8", "6.5", "9", "7.5", "6"])
        estimate = commitment_estimate(OFFER, days, "USD", SHORT)
        assert estimate is not None
        # rising order 0, 5, 5.5, 6, 6, 6.5, 7, 7.5, 8, 9; 20th percentile: rank 20 × 10 / 100 = 2, so 5 a day.
        # commitment 5 × 30 = 150.00 a month; 10% off = 15.00.
        assert estimate.savings == D("15.0000")
        assert "day 2 of 10 in rising order = 5 USD a day" in estimate.arithmetic
        assert "monthly commitment = 5 × 30 days = 150 USD" in estimate.arithmetic
        assert estimate.price_rows == ("offer:acme-annual",)
        assert len(estimate.evidence) == 9

    def test_window_ends_on_latest_usage(self) -> None:
        # Eleven days: the first falls outside the 10-day window and its 1.00 no longer sets the baseline.
        days = daily(["1", "5", "6", "6", "7", "5.5", "8", "6.5", "9", "7.5", "6"])
        estimate = commitment_estimate(OFFER, days, "USD", SHORT)
        assert estimate is not None
        # window 2026-10-02..11: rising 5, 5.5, 6, 6, 6, ...; rank 2 is 5.5; 5.5 × 30 = 165.00; 10% = 16.50.
        assert estimate.savings == D("16.5000")

    def test_rounds_commitment_down_to_cents(self) -> None:
        days = daily(["0.3333"] * 10)
        estimate = commitment_estimate(OFFER, days, "USD", SHORT)
        assert estimate is not None
        assert estimate.savings == D("0.9990")  # 0.3333 × 30 = 9.999, down to 9.99; 10% = 0.999

    def test_too_few_active_days(self) -> None:
        assert commitment_estimate(OFFER, daily(["5", "5", "5", "5"]), "USD", SHORT) is None

    def test_below_minimum_commitment(self) -> None:
        offer = CommitmentOffer("big", "anthropic", D("10"), 12, "terms", min_monthly_commitment=D("1000"))
        assert commitment_estimate(offer, daily(["5"] * 10), "USD", SHORT) is None

    def test_nearest_rank(self) -> None:
        assert nearest_rank(10, 30) == 3
        assert nearest_rank(10, 5) == 1  # 0.5 rounds up to rank 1
        assert nearest_rank(50, 10) == 5
        assert nearest_rank(100, 7) == 7


T4_UUID = "GPU-20c56d28-0da5-6d26-a36a-e7af1ce2586e"
T4 = f"424773df46e0/{T4_UUID} (Tesla T4)"


def windows(*percentages: str, hours: int = 6) -> list[GpuWindow]:
    start = at("2024-09-26T00:00")
    return [
        GpuWindow(
            start + timedelta(hours=hours * index), start + timedelta(hours=hours * (index + 1)), D(value), f"g{index}"
        )
        for index, value in enumerate(percentages)
    ]


class TestGpu:
    def test_list_price_is_opencost_gpu_cost(self) -> None:
        node = json.loads((FIXTURES / "costDataModel_node_g4dn_xlarge_fragment.json").read_text())["node"]
        assert load_gpu_prices()["Tesla T4"].hourly_price == D(node["gpuCost"])

    def test_idle_priced_from_list(self) -> None:
        scraped = dcgm_value("DCGM_FI_DEV_GPU_UTIL", T4_UUID)
        assert scraped == 0
        telemetry = windows(*[str(scraped)] * 4)  # the scraped value over four 6-hour windows
        finding = gpu_estimate(T4, telemetry, POLICY, None, load_gpu_prices()["Tesla T4"])
        assert finding is not None
        assert finding.kind is RecommendationKind.IDLE_GPU
        assert finding.mean_percent == D("0.00")
        # 0.461814 an hour × 730 hours = 337.12422
        assert finding.estimate.savings == D("337.12422")
        assert finding.confidence == "medium"
        assert finding.estimate.price_rows == ("gpu-price:Tesla T4",)

    def test_mean_is_weighted_by_window_length(self) -> None:
        start = at("2024-09-26T00:00")
        telemetry = [
            GpuWindow(start, start + timedelta(hours=18), D(10), "long"),
            GpuWindow(start + timedelta(hours=18), start + timedelta(hours=24), D(50), "short"),
        ]
        finding = gpu_estimate(T4, telemetry, POLICY, None, load_gpu_prices()["Tesla T4"])
        assert finding is not None
        # (10 × 64,800 + 50 × 21,600) / 86,400 seconds = 20%
        assert finding.mean_percent == D("20.00")
        assert finding.kind is RecommendationKind.UNDERUSED_GPU
        # 337.12422 × (1 − 20 / 70) = 337.12422 × 5 / 7 = 240.8030142857..., half-even to 6 places
        assert finding.estimate.savings == D("240.803014")

    def test_underused_priced_from_bill(self) -> None:
        billed = BilledCost("i-006flle71l19b488a", "2024-09", D("1.624"), "USD", ("cost:a",))
        finding = gpu_estimate("ip-11111/GPU-abc (NVIDIA A10G)", windows("10", "30", hours=12), POLICY, billed, None)
        assert finding is not None
        assert finding.kind is RecommendationKind.UNDERUSED_GPU
        assert finding.mean_percent == D("20.00")  # (10 + 30) / 2, equal windows
        # 1.624 × (1 − 20 / 70) = 1.624 × 5 / 7 = 1.16
        assert finding.estimate.savings == D("1.160000")
        assert finding.confidence == "low"
        assert finding.estimate.evidence == ("g0", "g1", "cost:a")
        assert finding.estimate.price_rows == ("bill:i-006flle71l19b488a:2024-09",)

    def test_idle_with_bill_is_high_confidence(self) -> None:
        billed = BilledCost("i-1", "2024-09", D("1.624"), "USD", ("cost:a",))
        finding = gpu_estimate("h/g", windows("1", "1", "1", "1"), POLICY, billed, None)
        assert finding is not None
        assert finding.estimate.savings == D("1.624")
        assert finding.confidence == "high"

    def test_busy_gpu_has_no_finding(self) -> None:
        assert gpu_estimate(T4, windows("55", "60", "50", "65"), POLICY, None, load_gpu_prices()["Tesla T4"]) is None

    def test_needs_a_full_day_of_telemetry(self) -> None:
        assert gpu_estimate(T4, windows("0", "0"), POLICY, None, load_gpu_prices()["Tesla T4"]) is None

    def test_unknown_price_is_not_zero(self) -> None:
        assert gpu_estimate("h/g (NVIDIA A10G)", windows("0", "0", "0", "0"), POLICY, None, None) is None

    def test_only_recent_windows_count(self) -> None:
        old = GpuWindow(at("2024-09-01T00:00"), at("2024-09-02T00:00"), D(90), "old")
        finding = gpu_estimate(T4, [old, *windows("0", "0", "0", "0")], POLICY, None, load_gpu_prices()["Tesla T4"])
        assert finding is not None
        assert finding.mean_percent == D("0.00")
        assert "old" not in finding.estimate.evidence


SEAT_PRICES = SeatPrices.load()
AS_OF = at("2021-11-20")


def list_price(vendor: str, product: str, plan: str | None) -> SeatCost | None:
    row = SEAT_PRICES.find(vendor, product, plan)
    return SeatCost(row.monthly_price, row.currency, row.row_id, row.source) if row else None


def copilot_seats() -> list[Seat]:
    """Read GitHub's documented seat list; the report date is set about a month after the last activity."""
    listing = json.loads((FIXTURES / "github_copilot_billing_seats_list.json").read_text())
    return [
        Seat(
            "github",
            "github-copilot",
            entry["assignee"]["login"],
            AS_OF,
            datetime.fromisoformat(entry["last_activity_at"]),
            entry.get("plan_type"),
            entry["pending_cancellation_date"],
            f"s{index}",
        )
        for index, entry in enumerate(listing["seats"], start=1)
    ]


def copilot_totals() -> Entitlement:
    """Read GitHub's documented Copilot billing example as seat totals."""
    breakdown = json.loads((FIXTURES / "github_copilot_org_billing_details.json").read_text())["seat_breakdown"]
    return Entitlement(
        "github",
        "github-copilot",
        AS_OF,
        breakdown["total"],
        breakdown["active_this_cycle"],
        breakdown["inactive_this_cycle"],
        breakdown["pending_cancellation"],
        "e1",
    )


class TestSeats:
    def test_unused_from_seat_list_and_totals(self) -> None:
        # GitHub's documented examples of one day: 12 seats paid for, 2 assigned. octocat is idle and octokitten
        # is pending cancellation, so unused = 1 idle + (12 − 2) not assigned = 11.
        totals = copilot_totals()
        assert (totals.entitled_seats, totals.inactive_seats, totals.pending_cancellation_seats) == (12, 11, 0)
        result = unused_seats_estimate("github", "github-copilot", copilot_seats(), totals, list_price, POLICY)
        assert result is not None
        estimate, unused, price = result
        assert unused == 11
        assert estimate.savings == D("209.00")  # 11 × 19.00 (Copilot Business)
        assert "12 entitled, 2 assigned, 1 assigned without activity" in estimate.arithmetic
        assert "unused = 1 + 10 not assigned = 11" in estimate.arithmetic
        assert estimate.price_rows == ("seat-price:github/github-copilot/business",)
        assert estimate.evidence == ("e1", "s1")

    def test_unused_from_seat_totals_alone(self) -> None:
        # Without a seat list, the vendor's count is used instead: 11 inactive − 0 pending cancellation = 11.
        result = unused_seats_estimate("github", "github-copilot", [], copilot_totals(), list_price, POLICY)
        assert result is not None
        estimate, unused, _price = result
        assert unused == 11
        assert "unused = 11 − 0 = 11" in estimate.arithmetic
        assert estimate.evidence == ("e1",)

    def test_totals_of_another_day_add_nothing(self) -> None:
        # Totals from a later report describe another roster: only octocat, idle in this seat list, is unused.
        later = replace(copilot_totals(), as_of=AS_OF + timedelta(days=30), entitled_seats=1)
        result = unused_seats_estimate("github", "github-copilot", copilot_seats(), later, list_price, POLICY)
        assert result is not None
        assert result[1] == 1

    def test_unused_from_seat_activity(self) -> None:
        result = unused_seats_estimate("github", "github-copilot", copilot_seats(), None, list_price, POLICY)
        assert result is not None
        estimate, unused, _price = result
        # octocat: last active 2021-10-14T06:53:32Z, 36 whole days before the report; octokitten is pending
        # cancellation.
        assert unused == 1
        assert estimate.savings == D("19.00")
        assert "octocat (last active 2021-10-14)" in estimate.arithmetic
        assert estimate.evidence == ("s1",)

    def test_recent_activity_is_not_unused(self) -> None:
        early = [Seat("github", "github-copilot", "octocat", at("2021-10-20"), at("2021-10-14"), "business", None, "s")]
        assert unused_seats_estimate("github", "github-copilot", early, None, list_price, POLICY) is None

    def test_reported_price_wins(self) -> None:
        def reported(_vendor: str, _product: str, _plan: str | None) -> SeatCost:
            return SeatCost(D("17.10"), "USD", "seat-price:reported:github/github-copilot", "report")

        totals = Entitlement("github", "github-copilot", AS_OF, 12, 12, 11, 1, "e1")
        result = unused_seats_estimate("github", "github-copilot", [], totals, reported, POLICY)
        assert result is not None
        assert result[0].savings == D("171.00")  # (11 − 1 pending) × 17.10

    def test_unknown_price_is_not_zero(self) -> None:
        seats = [Seat("acme", "acme-ai", "ann", AS_OF, None, None, None, "s")]
        assert unused_seats_estimate("acme", "acme-ai", seats, None, list_price, POLICY) is None

    def test_overlapping_coding_assistants(self) -> None:
        cursor = [
            Seat("cursor", "cursor", "octocat", AS_OF, at("2021-10-10"), "teams", None, "c1"),
            Seat("cursor", "cursor", "OctoKitten", AS_OF, at("2021-11-18"), "teams", None, "c2"),
            Seat("cursor", "cursor", "hubot", AS_OF, at("2021-11-18"), "teams", None, "c3"),
        ]
        result = overlapping_tools_estimate("coding-assistant", copilot_seats() + cursor, list_price)
        assert result is not None
        estimate, overlaps = result
        # octocat used Copilot last (10-14 after 10-10): drops Cursor at 40.00.
        # octokitten used Cursor last (11-18 after 10-13): drops Copilot at 19.00 (no plan: Business price).
        # hubot has one seat only.
        assert [overlap.holder for overlap in overlaps] == ["octocat", "octokitten"]
        assert estimate.savings == D("59.00")
        assert "estimated monthly savings = 40 + 19 = 59 USD" in estimate.arithmetic


def test_policy_reads_every_section(tmp_path: Path) -> None:
    path = tmp_path / "optimizer.yaml"
    path.write_text(
        """
non_interactive_use_cases: [document-extraction]
batch_tier:
  tags: {workload: batch}
  business_hours: {start_hour: 9, end_hour: 17, weekdays: [1, 2, 3, 4, 5], timezone: Europe/Berlin}
prompt_caching: {cacheable_share: "0.4", reads_per_write: 5}
commitments:
  offers:
    - {id: a, provider: anthropic, discount_percent: "12.5", term_months: 12, source: quote}
gpu: {idle_below_percent: "3", resources: {ip-11111: i-006flle71l19b488a}}
seats: {unused_after_days: 45}
"""
    )
    policy = OptimizerPolicy.load(path)
    assert policy.batch_tags == {"workload": "batch"}
    assert policy.business_hours.timezone == "Europe/Berlin"
    assert policy.caching_cacheable_share == D("0.4")
    assert policy.commitment_offers[0].discount_percent == D("12.5")
    assert policy.gpu_idle_below_percent == D(3)
    assert policy.gpu_resources == {"ip-11111": "i-006flle71l19b488a"}
    assert policy.seats_unused_after_days == 45


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("prompt_caching: {cacheable_share: 0.5}", "prompt_caching.cacheable_share: write the number as a quoted"),
        ("prompt_caching: {cacheable_share: '1.5'}", "prompt_caching.cacheable_share: must be more than 0"),
        (
            "commitments: {offers: [{id: a, provider: p, source: s, discount_percent: '0', term_months: 1}]}",
            "commitments.offers[0].discount_percent: must be between 0 and 100",
        ),
        (
            "commitments: {offers: [{id: a, provider: p, source: s, discount_percent: '5'}]}",
            "commitments.offers[0].term_months: must be a positive whole number",
        ),
        ("commitments: {min_active_days: 40}", "commitments.min_active_days: must not exceed lookback_days"),
        ("gpu: {idle_below_percent: '50'}", "must be in rising order"),
        ("batch_tier: {business_hours: {timezone: Mars/Olympus}}", "unknown IANA time zone"),
        ("batch_tier: {business_hours: {start_hour: 18, end_hour: 8}}", "start_hour 18 must be before end_hour 8"),
        ("seats: {unused_after_days: 0}", "seats.unused_after_days: must be a positive whole number"),
    ],
)
def test_policy_rejects_bad_input(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "optimizer.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError) as error:
        OptimizerPolicy.load(path)
    assert message in str(error.value)

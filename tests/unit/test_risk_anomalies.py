"""The robust baseline of daily spend, worked out by hand."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from services.risk.anomalies import AnomalySettings, judge_day, robust_baseline

# One week of the synthetic research series: input and output tokens of gpt-4o at 2.50 and 10.00 USD per million.
#   1,200,000/100,000 → 3.00 + 1.00 = 4.00      1,100,000/90,000 → 2.75 + 0.90 = 3.65
#   1,300,000/110,000 → 3.25 + 1.10 = 4.35      1,250,000/105,000 → 3.125 + 1.05 = 4.175
#   1,150,000/95,000 → 2.875 + 0.95 = 3.825     1,000,000/80,000 → 2.50 + 0.80 = 3.30
#   1,050,000/85,000 → 2.625 + 0.85 = 3.475
WEEK = [Decimal(v) for v in ("4.00", "3.65", "4.35", "4.175", "3.825", "3.30", "3.475")]
FIRST = date(2026, 10, 13)
SETTINGS = AnomalySettings()  # 28-day window, 7 days of history, threshold 3.5, floor 10.00 USD


def series(days: int, spike: Decimal | None = None) -> dict[date, Decimal]:
    daily = {FIRST + timedelta(days=index): WEEK[index % 7] for index in range(days)}
    if spike is not None:
        daily[FIRST + timedelta(days=days)] = spike
    return daily


def test_baseline_of_four_weeks() -> None:
    # 28 days hold each weekly value 4 times. Sorted, days 13 to 16 are 3.825, so the median is 3.825.
    # Deviations: 0 ×4, 0.175 ×8, 0.35 ×8, 0.525 ×8; the 14th and 15th are 0.35, so MAD = 0.35.
    baseline = robust_baseline(WEEK * 4)

    assert baseline.median == Decimal("3.825")
    assert baseline.mad == Decimal("0.350")
    assert baseline.scale == Decimal("1.4826") * Decimal("0.350")  # 0.51891
    assert baseline.days == 28


def test_spike_fires_with_its_score() -> None:
    # (42.00 − 3.825) / 0.51891 = 73.5676… → 73.57, above 3.5, and 42.00 is over the 10.00 floor.
    daily = series(28, spike=Decimal("42.00"))

    verdict = judge_day(date(2026, 11, 10), daily, FIRST, Decimal("10.00"), SETTINGS)

    assert verdict is not None
    assert verdict.score == Decimal("73.57")
    assert verdict.anomalous


def test_floor_keeps_small_spikes_quiet() -> None:
    daily = series(28, spike=Decimal("9.00"))  # (9.00 − 3.825) / 0.51891 = 9.97, but under the 10.00 floor

    verdict = judge_day(date(2026, 11, 10), daily, FIRST, Decimal("10.00"), SETTINGS)

    assert verdict is not None
    assert verdict.score == Decimal("9.97")
    assert not verdict.anomalous


def test_normal_day_after_spike_is_quiet() -> None:
    daily = series(28, spike=Decimal("42.00"))
    daily[date(2026, 11, 11)] = Decimal("3.65")

    verdict = judge_day(date(2026, 11, 11), daily, FIRST, Decimal("1.00"), SETTINGS)

    assert verdict is not None
    assert not verdict.anomalous  # 3.65 is below the median of the 28 days before it


def test_young_series_has_no_baseline() -> None:
    daily = series(5, spike=Decimal("42.00"))

    assert judge_day(FIRST + timedelta(days=5), daily, FIRST, Decimal("10.00"), SETTINGS) is None


def test_missing_days_count_as_zero_spend() -> None:
    # Spend on 3 of 10 days: the baseline is seven zeros and 3 × 5.00, so the median and MAD are 0 and
    # 1.2533 × the mean deviation (15.00 / 10 = 1.50) = 1.87995 is the scale. (20.00 − 0) / 1.87995 = 10.64.
    daily = {FIRST + timedelta(days=offset): Decimal("5.00") for offset in (0, 4, 8)}
    daily[FIRST + timedelta(days=10)] = Decimal("20.00")

    verdict = judge_day(FIRST + timedelta(days=10), daily, FIRST, Decimal("10.00"), SETTINGS)

    assert verdict is not None
    assert verdict.baseline.median == 0
    assert verdict.baseline.mad == 0
    assert verdict.baseline.scale == Decimal("1.2533") * Decimal("1.50")
    assert verdict.score == Decimal("10.64")
    assert verdict.anomalous


def test_constant_baseline_fires_on_any_rise_over_floor() -> None:
    daily = {FIRST + timedelta(days=offset): Decimal("12.00") for offset in range(10)}
    daily[FIRST + timedelta(days=10)] = Decimal("12.01")

    verdict = judge_day(FIRST + timedelta(days=10), daily, FIRST, Decimal("10.00"), SETTINGS)

    assert verdict is not None
    assert verdict.baseline.scale == 0
    assert verdict.score is None
    assert verdict.anomalous


def test_drop_is_not_an_anomaly() -> None:
    daily = series(28)
    daily[date(2026, 11, 10)] = Decimal("0")

    verdict = judge_day(date(2026, 11, 10), daily, FIRST, Decimal("0"), SETTINGS)

    assert verdict is not None
    assert verdict.score is not None and verdict.score < 0
    assert not verdict.anomalous

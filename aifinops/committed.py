"""Committed spend for the CLI and the demo: every spend commitment, projected from the data clock.

Spend commitments are configured in two places: the tenant terms file of allocation
(``ALLOCATION_TERMS_FILE``), which also contains credits and discounts, and the contracts file of
risk (``RISK_CONTRACTS_FILE``), which also contains notice periods and seat licences. The drawdown
lists both, a contract id present in both once (the tenant terms' entry wins). Risk's contract dates
are read in risk's time zone of the tenant (``RISK_TIME_ZONE``, ``RISK_TENANT_TIME_ZONES``), as the risk
service reads them for its commitment findings, so both project over the same term. Every projection
is taken as of the data clock, the end of the tenant's newest usage, unless a day is given.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from services.allocation.commands import commitments, usage_clock
from services.allocation.commitments import Drawdown
from services.allocation.settings import AllocationSettings
from services.allocation.terms import Contract
from services.risk.contracts import load_contracts
from services.risk.settings import RiskSettings
from shared.events import Money


def risk_commitments(path: Path | None, tenant: str, zone: ZoneInfo) -> list[Contract]:
    """Read the spend commitments of one tenant from risk's contracts file, as allocation contracts."""
    if path is None:
        return []
    found = []
    for contract in load_contracts(path, tenant):
        if contract.kind != "spend_commitment" or contract.tenant != tenant:
            continue
        assert contract.provider is not None and contract.committed is not None
        starts, ends = contract.term_bounds(zone)
        found.append(
            Contract(
                contract_id=contract.contract_id,
                provider=contract.provider,
                starts=starts,
                ends=ends,
                committed_spend=Money(amount=contract.committed, currency=contract.currency),
            )
        )
    return found


async def committed_spend(
    settings: AllocationSettings, tenant: str, risk: RiskSettings, as_of: datetime | None = None
) -> tuple[datetime, list[Drawdown]]:
    """Return the instant projected from and the drawdown of every spend commitment of the tenant.

    Without ``as_of`` the instant is the data clock, or the current time when the tenant has no usage yet.
    """
    extra = risk_commitments(risk.contracts_file, tenant, risk.zone_for(tenant))
    if as_of is None:
        as_of = await usage_clock(settings, tenant) or datetime.now(UTC)
    return as_of, await commitments(settings, tenant, as_of, extra)

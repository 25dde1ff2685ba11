"""Hostile webhook bodies over real HTTP: whatever arrives, the answer is a 2xx or 4xx, never a server error.

Bodies are signed correctly, so they pass the signature check and reach the normalisers; 503 (overload) is the only
5xx a client may see.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aifinops.stack import Stack
from services.ingest.normalisers import NORMALISERS

pytestmark = pytest.mark.integration

TENANT = "webhook-fuzz"
ALLOWED = {202, 400, 404, 409, 413, 415, 422, 503}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(["1e308", "-0", "NaN", "2025-10-05T00:00:00Z", "\u0000", "\ud7ff"]),
)
documents = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=15), children, max_size=5),
    max_leaves=30,
)
bodies = st.one_of(
    documents.map(lambda value: json.dumps(value).encode()),
    st.binary(max_size=600),
    st.builds(
        lambda results: json.dumps(
            {
                "data": [
                    {
                        "starting_at": "2026-11-02T00:00:00Z",
                        "ending_at": "2026-11-03T00:00:00Z",
                        "start_time": 1762041600,
                        "end_time": 1762128000,
                        "results": results,
                    }
                ]
            }
        ).encode(),
        st.lists(
            st.dictionaries(
                st.sampled_from(
                    [
                        "model",
                        "uncached_input_tokens",
                        "output_tokens",
                        "input_tokens",
                        "cache_read_input_tokens",
                        "service_tier",
                        "workspace_id",
                    ]
                ),
                scalars,
                max_size=7,
            ),
            max_size=3,
        ),
    ),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(format_name=st.sampled_from(sorted(NORMALISERS)), body=bodies)
def test_hostile_bodies_get_a_client_error_or_acceptance(stack: Stack, format_name: str, body: bytes) -> None:
    response = httpx.post(
        stack.url("ingest", f"/v1/usage/{format_name}"), content=body,
        headers=stack.webhook_headers(body, TENANT), timeout=30,
    )  # fmt: skip
    assert response.status_code in ALLOWED, (response.status_code, response.text[:300])
    payload: Any = response.json()
    assert isinstance(payload, dict)

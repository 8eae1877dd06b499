"""Schemathesis generates requests from the gateway's own OpenAPI document, for every route,
and none may be answered with a 5xx. It runs against a system of its own: the generated
requests create, change and refuse whatever the consortium admin may, and must not touch
the data the other tests share.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from deploy.local.system import LocalSystem
from tests.conftest import start_system
from tests.servers import Servers

EXAMPLES = 25


@pytest.fixture(scope="module")
def fuzzed(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSystem]:
    running = start_system(
        servers, tmp_path_factory.mktemp("fuzzed"), db="refdesk_fuzzed", own_nats=True
    )
    try:
        yield running
    finally:
        running.stop()


def test_no_route_answers_a_generated_request_with_a_server_error(fuzzed: LocalSystem):
    import httpx

    base = fuzzed.gateway_url
    token = httpx.post(
        f"{base}/api/auth/login", json={"username": "demo-admin", "password": "refdesk-demo"}
    ).json()["token"]
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    failures: list[str] = []
    tried = 0
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def call(case: schemathesis.Case) -> None:
            nonlocal tried
            tried += 1
            response = case.call(
                base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=10
            )
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} -> {response.status_code} "
                    f"{response.text[:200]}"
                )

        call()
    print(f"schemathesis: {tried} generated requests")
    assert tried > 100
    assert failures == [], "\n".join(failures[:20])

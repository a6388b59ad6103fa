"""/metrics of a real `crm serve --workers 2`: every scrape, whichever worker answers it, counts
the requests of both workers, and shows each worker's process figures."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.support.server import CrmProcess

ROUTE = "/healthz"
_REQUESTS = re.compile(
    r'^crm_http_requests_total\{(?=[^}]*method="GET")(?=[^}]*route="/healthz")'
    r'(?=[^}]*status="200")[^}]*\} (\S+)$',
    re.MULTILINE,
)
_PIDS = re.compile(r'^process_start_time_seconds\{[^}]*pid="(\d+)"[^}]*\}', re.MULTILINE)


def _scrape(base_url: str) -> str:
    # A new connection each time, so the scrape may land on either worker.
    response = httpx.get(f"{base_url}/metrics", timeout=10.0)
    assert response.status_code == 200
    return response.text


def _counted(text: str) -> float:
    found = _REQUESTS.findall(text)
    assert len(found) == 1, text[:2000]
    return float(found[0])


def test_two_workers_count_every_request_in_every_scrape(tmp_path: Path, database_url: str) -> None:
    server = CrmProcess.serve(tmp_path, database_url, workers=2, CRM_WORKER_ENABLED="false")
    with server:
        sent = 0
        pids: set[str] = set()
        # Until both workers have answered some requests (bounded): only then can the count of
        # one worker differ from the whole.
        for _ in range(50):
            for _ in range(10):
                assert httpx.get(f"{server.base_url}{ROUTE}", timeout=10.0).status_code == 200
                sent += 1
            pids |= set(_PIDS.findall(_scrape(server.base_url)))
            if len(pids) >= 2:
                break
        assert len(pids) >= 2, "the requests never reached the second worker"
        counts = [_counted(_scrape(server.base_url)) for _ in range(8)]
        assert counts == [sent] * 8
        text = _scrape(server.base_url)
        assert "# TYPE crm_http_request_duration_seconds histogram" in text
        assert "python_info" in text

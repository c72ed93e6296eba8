"""Coverage as JSON or CSV, chosen by the Accept header (parameters and q-values honoured)."""

import pytest

URL = "/api/v1/metrics/coverage"
CSV_URL = "/api/v1/metrics/coverage.csv"
QUERY = {"from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z", "group_by": "region"}
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def fetch(client, auth, world, url, accept):
    headers = auth(world.users["admin"]) if accept is None else auth(
        world.users["admin"], Accept=accept)
    response = client.get(url, query_string=QUERY, headers=headers)
    assert response.status_code == 200
    return response


@pytest.mark.parametrize(("accept", "mimetype"), [
    (None, "application/json"),
    ("*/*", "application/json"),
    (BROWSER, "application/json"),
    ("application/json", "application/json"),
    ("application/json; charset=utf-8", "application/json"),
    ("text/csv", "text/csv"),
    ("text/csv; charset=utf-8", "text/csv"),
    ("text/csv;charset=UTF-8", "text/csv"),
    ("text/csv; header=present", "text/csv"),
    ("text/*", "text/csv"),
    ("text/csv;q=0.9, application/json;q=0.5", "text/csv"),
    ("application/json;q=0.1, text/csv", "text/csv"),
    ("application/json;q=0.5, text/csv; charset=utf-8", "text/csv"),
    ("text/csv;q=0.5, */*", "application/json"),
    ("text/csv;q=0.5, application/json", "application/json"),
    ("text/csv, application/json", "application/json"),  # a tie: JSON, the default
])
def test_coverage_answers_the_format_the_accept_header_prefers(
        client, auth, world, accept, mimetype):
    response = fetch(client, auth, world, URL, accept)

    assert response.mimetype == mimetype
    assert response.headers.get("Vary") == "Accept"
    if mimetype == "text/csv":
        assert response.get_data(as_text=True).startswith("group,label,registered,served")
    else:
        assert {"rows", "equity"} <= set(response.json)


@pytest.mark.parametrize("accept", [
    None, "*/*", "application/json", "application/json, text/csv;q=0.1", "text/html"])
def test_coverage_csv_path_is_csv_whatever_the_accept_header(client, auth, world, accept):
    response = fetch(client, auth, world, CSV_URL, accept)

    assert response.mimetype == "text/csv"
    assert response.get_data(as_text=True).startswith("group,label,registered,served")

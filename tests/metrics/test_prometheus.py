"""GET /metrics: Prometheus text, figures read from the database."""

from datetime import UTC, datetime, timedelta
from email.message import Message

from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families


def scrape(client) -> dict:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            samples[key] = sample.value
    return samples


def test_metrics_count_bookings_reminders_and_dispatcher_lag(
        client, world, create_service_type, set_availability, create_appointment, frozen_clock):
    create_service_type()
    set_availability(world.clinician_a)
    create_appointment(world.resident_a1, world.clinician_a,
                       datetime(2026, 12, 3, 2, 0, tzinfo=UTC))
    frozen_clock.advance(timedelta(minutes=5))

    samples = scrape(client)

    assert samples[("careservice_bookings_total", ())] == 1
    assert samples[("careservice_appointments", (("status", "booked"),))] == 1
    assert samples[("careservice_reminders", (("status", "pending"),))] == 3
    # The confirmation has been due for five minutes and nothing has sent it.
    assert samples[("careservice_dispatcher_lag_seconds", ())] == 300
    assert samples[("careservice_care_requests_open", ())] == 0


def test_metrics_time_requests_by_endpoint(client):
    client.get("/healthz")

    samples = scrape(client)

    counts = [value for (name, labels), value in samples.items()
              if name == "careservice_request_duration_seconds_count"
              and dict(labels).get("endpoint") == "health.Healthz"]
    assert counts and counts[0] >= 1


def test_metrics_content_type_is_prometheus_latest_once(client):
    """A duplicated parameter makes strict parsers (Go's mime.ParseMediaType, so the
    Prometheus scraper) refuse the header."""
    header = client.get("/metrics").headers["Content-Type"]

    params = [name.strip().split("=", 1)[0].lower() for name in header.split(";")[1:]]
    assert len(params) == len(set(params)), header
    parsed = Message()
    parsed["Content-Type"] = header
    assert parsed.get_content_type() == "text/plain"
    assert parsed.get_param("version") == "1.0.0"
    assert parsed.get_content_charset() == "utf-8"
    assert header == CONTENT_TYPE_LATEST


def test_openapi_document_describes_metrics_as_prometheus_text(client):
    """API.md: the served document describes every endpoint, /metrics (plain Flask) too."""
    paths = client.get("/api/v1/openapi.json").json["paths"]

    assert "/metrics" in paths
    assert set(paths["/metrics"]) == {"get"}
    ok = paths["/metrics"]["get"]["responses"]["200"]
    assert set(ok["content"]) == {"text/plain"}

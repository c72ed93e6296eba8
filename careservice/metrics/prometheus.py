"""GET /metrics: Prometheus text format for operations.

Business figures (bookings, cancellations, no-shows, reminders by status,
dispatcher lag) are read from the database at scrape time, so every gunicorn
worker and every app copy answers the same numbers. Request latency is a
histogram per process; with PROMETHEUS_MULTIPROC_DIR set (a directory shared by
the gunicorn workers), the workers' histograms are summed on each scrape.
"""

import os
import time

import sqlalchemy as sa
from flask import Blueprint, Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from careservice.core.time import utcnow
from careservice.extensions import db
from careservice.reminders.models import Reminder, ReminderStatus
from careservice.scheduling.models import Appointment, CareRequest, RequestStatus

blp = Blueprint("prometheus", __name__)

REQUEST_SECONDS = Histogram(
    "careservice_request_duration_seconds", "HTTP request latency", ["method", "endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=None)


class DatabaseCollector:
    """Counts read from the database on each scrape."""

    def __init__(self, app: Flask):
        self.app = app

    def collect(self):
        with self.app.app_context():
            yield from self._collect()
            db.session.remove()

    def _collect(self):
        by_status = dict(db.session.execute(
            sa.select(Appointment.status, sa.func.count()).group_by(Appointment.status)).all())
        appointments = GaugeMetricFamily("careservice_appointments",
                                         "Appointments by status", labels=["status"])
        for status, count in sorted(by_status.items()):
            appointments.add_metric([status], count)
        yield appointments
        booked = db.session.execute(sa.select(sa.func.count()).select_from(Appointment)
                                    .where(Appointment.recorded.is_(False))).scalar_one()
        yield CounterMetricFamily("careservice_bookings", "Appointments booked", value=booked)
        yield CounterMetricFamily("careservice_cancellations", "Appointments cancelled",
                                  value=by_status.get("cancelled", 0))
        yield CounterMetricFamily("careservice_no_shows", "Appointments missed",
                                  value=by_status.get("no_show", 0))
        reminders = GaugeMetricFamily("careservice_reminders", "SMS outbox rows by status",
                                      labels=["status"])
        for status, count in sorted(db.session.execute(
                sa.select(Reminder.status, sa.func.count()).group_by(Reminder.status)).all()):
            reminders.add_metric([status], count)
        yield reminders
        now = utcnow()
        oldest_due = db.session.execute(
            sa.select(sa.func.min(Reminder.send_at)).where(
                Reminder.status == ReminderStatus.PENDING, Reminder.send_at <= now)).scalar()
        yield GaugeMetricFamily(
            "careservice_dispatcher_lag_seconds",
            "How long the oldest due SMS has waited (0: nothing waiting)",
            value=(now - oldest_due).total_seconds() if oldest_due else 0.0)
        open_requests = db.session.execute(
            sa.select(sa.func.count()).select_from(CareRequest)
            .where(CareRequest.status == RequestStatus.OPEN)).scalar_one()
        yield GaugeMetricFamily("careservice_care_requests_open", "Care requests waiting",
                                value=open_requests)


def init_prometheus(app: Flask) -> None:
    registry = CollectorRegistry()  # no collect at start-up: the database may not be up yet
    registry.register(DatabaseCollector(app))
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(REQUEST_SECONDS)
    app.extensions["prometheus_registry"] = registry

    @app.before_request
    def start_timer():
        g.request_started = time.perf_counter()

    @app.after_request
    def observe(response):
        began = g.pop("request_started", None)
        if began is not None and request.endpoint != "prometheus.metrics":
            REQUEST_SECONDS.labels(request.method, request.endpoint or "unknown").observe(
                time.perf_counter() - began)
        return response


def document(spec, url_map) -> None:
    """Describe GET /metrics in the OpenAPI document: flask-smorest sees only its own views."""
    spec.tag({"name": "prometheus", "description": "Operations counters for Prometheus"})
    # flask-smorest's path helper reads the path from the Flask rule.
    spec.path(rule=next(url_map.iter_rules("prometheus.metrics")), operations={"get": {
        "tags": ["prometheus"],
        "summary": "Operations counters, gauges and request latency.",
        "responses": {"200": {
            "description": f"Prometheus text exposition format ({CONTENT_TYPE_LATEST})",
            "content": {"text/plain": {"schema": {"type": "string"}}}}}}})


@blp.get("/metrics")
def metrics():
    from flask import current_app

    registry = current_app.extensions["prometheus_registry"]
    # content_type, not mimetype: Werkzeug appends a charset to a text/ mimetype, and
    # CONTENT_TYPE_LATEST has one already; strict parsers refuse a doubled parameter.
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)

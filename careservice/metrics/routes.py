"""GET /api/v1/metrics/coverage (JSON or CSV)."""

import csv
import io

from flask import Response, request
from flask.views import MethodView

from careservice.core.auth import current_actor, require
from careservice.core.models import Role
from careservice.core.web import BEARER, Blueprint
from careservice.metrics import coverage
from careservice.metrics.schemas import CoverageOut, CoverageQuery

blp = Blueprint("metrics", __name__, url_prefix="/api/v1/metrics",
                description="Coverage and equity")

SOURCE_DOC = {"X-Coverage-Source": {
    "description": "rollup: read from the stored day, ISO week or month; raw: computed",
    "schema": {"type": "string", "enum": ["rollup", "raw"]}}}
CSV_DOC = {"200": {"description": "The rows as CSV, one column per row field",
                   "content": {"text/csv": {"schema": {"type": "string"}}},
                   "headers": SOURCE_DOC}}


def source_header(report: dict) -> dict:
    """Whether the figures came from a stored rollup or from the raw rows."""
    return {"X-Coverage-Source": report["source"]}


def as_csv(report: dict, **headers: str) -> Response:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(coverage.ROW_FIELDS)
    for row in report["rows"]:
        writer.writerow(["" if row[name] is None else row[name] for name in coverage.ROW_FIELDS])
    return Response(out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="coverage.csv"',
                             **source_header(report), **headers})


JSON, CSV = "application/json", "text/csv"
# What /coverage serves, with the parameters it honours. Werkzeug matches a client's
# parameters exactly, so `text/csv; charset=utf-8` matches only an offer carrying them.
# JSON comes first: it wins a tie, and is the answer when nothing matches.
OFFERS = {JSON: JSON, f"{JSON}; charset=utf-8": JSON,
          CSV: CSV, f"{CSV}; charset=utf-8": CSV, f"{CSV}; header=present": CSV,
          f"{CSV}; charset=utf-8; header=present": CSV}
NEGOTIATED = {"Vary": "Accept"}


def wants_csv() -> bool:
    """True when the Accept header ranks CSV above JSON."""
    return OFFERS[request.accept_mimetypes.best_match(OFFERS, default=JSON)] == CSV


@blp.route("/coverage")
class Coverage(MethodView):
    @require(Role.ADMIN, Role.COORDINATOR)
    @blp.doc(security=BEARER)
    @blp.arguments(CoverageQuery, location="query", as_kwargs=True)
    @blp.response(200, CoverageOut, headers=SOURCE_DOC)
    def get(self, **query):
        """Coverage by group for [from, to), and the equity block; `Accept: text/csv` for CSV."""
        report = coverage.coverage(current_actor(), **query)
        if wants_csv():
            return as_csv(report, **NEGOTIATED)
        return report, 200, {**source_header(report), **NEGOTIATED}


@blp.route("/coverage.csv")
class CoverageCsv(MethodView):
    @require(Role.ADMIN, Role.COORDINATOR)
    @blp.doc(security=BEARER, responses=CSV_DOC)
    @blp.arguments(CoverageQuery, location="query", as_kwargs=True)
    def get(self, **query):
        """The coverage rows as CSV."""
        return as_csv(coverage.coverage(current_actor(), **query))

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

CSV_DOC = {"200": {"description": "The rows as CSV, one column per row field",
                   "content": {"text/csv": {"schema": {"type": "string"}}}}}


def as_csv(rows: list[dict]) -> Response:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(coverage.ROW_FIELDS)
    for row in rows:
        writer.writerow(["" if row[name] is None else row[name] for name in coverage.ROW_FIELDS])
    return Response(out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="coverage.csv"'})


def wants_csv() -> bool:
    best = request.accept_mimetypes.best_match(["application/json", "text/csv"])
    return best == "text/csv" and request.accept_mimetypes["text/csv"] > \
        request.accept_mimetypes["application/json"]


@blp.route("/coverage")
class Coverage(MethodView):
    @require(Role.ADMIN, Role.COORDINATOR)
    @blp.doc(security=BEARER)
    @blp.arguments(CoverageQuery, location="query", as_kwargs=True)
    @blp.response(200, CoverageOut)
    def get(self, **query):
        """Coverage by group for [from, to), and the equity block; `Accept: text/csv` for CSV."""
        report = coverage.coverage(current_actor(), **query)
        return as_csv(report["rows"]) if wants_csv() else report


@blp.route("/coverage.csv")
class CoverageCsv(MethodView):
    @require(Role.ADMIN, Role.COORDINATOR)
    @blp.doc(security=BEARER, responses=CSV_DOC)
    @blp.arguments(CoverageQuery, location="query", as_kwargs=True)
    def get(self, **query):
        """The coverage rows as CSV."""
        return as_csv(coverage.coverage(current_actor(), **query)["rows"])

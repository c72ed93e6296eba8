"""`?limit=&offset=` lists answered as {"items": [...], "total": N}."""

import sqlalchemy as sa
from marshmallow import Schema, fields, validate

from careservice.core.schemas import QuerySchema
from careservice.extensions import db

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


class PageArgs(QuerySchema):
    limit = fields.Integer(load_default=DEFAULT_LIMIT,
                           validate=validate.Range(min=1, max=MAX_LIMIT))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0))


def page_schema(item_schema, name: str):
    """An output schema {"items": [item], "total": int} named for OpenAPI."""
    return Schema.from_dict(
        {"items": fields.List(fields.Nested(item_schema)), "total": fields.Integer()},
        name=name,
    )


def paginate(select: sa.Select, limit: int, offset: int) -> dict:
    """One page of a select, with the total before paging; the select must be ordered."""
    total = db.session.execute(
        sa.select(sa.func.count()).select_from(select.order_by(None).subquery())
    ).scalar_one()
    items = db.session.execute(select.limit(limit).offset(offset)).scalars().all()
    return {"items": items, "total": total}

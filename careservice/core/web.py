"""Small pieces every API blueprint uses."""

import json

from flask import Response, current_app
from flask_smorest import Blueprint as SmorestBlueprint
from flask_smorest.utils import resolve_schema_instance
from webargs import core
from webargs.flaskparser import FlaskParser
from werkzeug.routing import IntegerConverter

from careservice.core.schemas import LARGEST_INTEGER, ErrorSchema

BEARER = [{"bearerAuth": []}]


class DatabaseInteger(IntegerConverter):
    """`<int:...>` in paths, up to the largest whole number a database column holds:
    a larger id names nothing (404), where the drivers would raise on it."""

    def __init__(self, url_map, *args, **kwargs):
        kwargs.setdefault("max", LARGEST_INTEGER)
        super().__init__(url_map, *args, **kwargs)


def parse_json(data: bytes):
    """json.loads, with nesting too deep for the parser reported as malformed JSON."""
    try:
        return core.parse_json(data)
    except RecursionError:
        # A document, not "": webargs takes an empty one for no body at all.
        raise json.JSONDecodeError("Nested too deeply.", "...", 0) from None


class JsonParser(FlaskParser):
    """Reads a JSON body whatever its Content-Type claims: curl's default
    form type on a JSON body should not lose the body."""

    def _raw_load_json(self, req):
        data = req.get_data(cache=True)
        if not data:
            return core.missing
        return parse_json(data)


class Blueprint(SmorestBlueprint):
    ARGUMENTS_PARSER = JsonParser()

    def arguments(self, schema, *args, **kwargs):
        """As flask-smorest's, with the schema made once: webargs would build an
        instance of a schema class on every request."""
        return super().arguments(resolve_schema_instance(schema), *args, **kwargs)

    def alt_response(self, status_code, *args, schema=None, **kwargs):
        """As flask-smorest's; an error answer (4xx) is documented with the error
        envelope unless it says otherwise."""
        if schema is None and str(status_code).startswith("4"):
            schema = ErrorSchema
        return super().alt_response(status_code, *args, schema=schema, **kwargs)


def json_response(data, status: int = 200) -> Response:
    """Already serialised data as a JSON response (flask-smorest passes it through)."""
    return current_app.response_class(
        json.dumps(data, ensure_ascii=False), status=status, mimetype="application/json"
    )


def dump(schema_cls, obj, *, only=None, status: int = 200, many: bool = False) -> Response:
    """Serialise with a declared field set (a role's view) and answer JSON."""
    return json_response(schema_cls(only=only, many=many).dump(obj), status)


def dump_page(schema_cls, page: dict, *, only=None) -> Response:
    """A page of items; `only` is one field set, or a function giving each item's."""
    if callable(only):
        schemas = {}
        items = []
        for item in page["items"]:
            fields = only(item)
            if fields not in schemas:
                schemas[fields] = schema_cls(only=fields)
            items.append(schemas[fields].dump(item))
    else:
        items = schema_cls(only=only, many=True).dump(page["items"])
    return json_response({"items": items, "total": page["total"]})

"""Extensions, created bare and bound to the app in create_app."""

from flask_migrate import Migrate
from flask_smorest import Api
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

from careservice.core.db import render_item
from careservice.core.schemas import ErrorSchema

# Stable constraint names, so Alembic can alter them on SQLite (batch mode) and
# PostgreSQL alike.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# Sessions live for one request or one job: objects stay readable after the
# commit (for the response) without a reload per attribute.
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})
migrate = Migrate(compare_type=True, render_as_batch=True, render_item=render_item)


class CareserviceApi(Api):
    """flask-smorest's Api, with errors left to careservice.core.errors (the API.md envelope)."""

    ERROR_SCHEMA = ErrorSchema

    def _register_error_handlers(self):
        pass


api = CareserviceApi()

"""The WSGI entry point for gunicorn: `gunicorn wsgi:app`."""

from careservice import create_app

app = create_app()

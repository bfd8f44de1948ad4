"""The Starlette application of fsctl-web: its routes and static files."""

from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from ..db import open_database
from . import api, pages
from .handling import HERE, Web


def create_app(settings, clock=None, open_db=True, mailer=None, rate_timer=None):
    """The ASGI application for these settings (the database opened and migrated unless open_db=False)."""
    if open_db:
        open_database(settings.database, create=False)  # only `fsctl init` creates the database
    web = Web(settings, clock, mailer, rate_timer)
    routes = [
        *pages.ROUTES,
        *api.ROUTES,
        Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    app = Starlette(routes=routes)
    app.state.web = web
    return app

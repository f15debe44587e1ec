"""Embedded report pages, the KPI API and exports (pushes are the core's: ``b24desk/push/``)."""


def init_app(app) -> None:
    _init_pages(app)


def _init_pages(app) -> None:
    """The embedded pages, /app, /api/kpi, the drilldown and exports (one blueprint), their
    viewer-token errors and the frame-safe security headers."""
    from . import api, auth, capacity, launch, pages, saved_api, saved_pages, security  # noqa: F401  (routes register on the blueprint)
    from .blueprint import bp, get_db

    app.register_blueprint(bp)
    auth.init_app(app)
    app.after_request(lambda response: security.apply_headers(response, get_db))

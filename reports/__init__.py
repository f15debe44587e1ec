"""Embedded report pages, the KPI API, exports and pushes."""


def init_app(app) -> None:
    pass

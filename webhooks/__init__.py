"""Install and event endpoints (POST /install, POST /events): verify, store, ack, process later."""


def init_app(app) -> None:
    pass

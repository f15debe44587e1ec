"""Install and event endpoints (POST /install, POST /events): verify, store, ack, process later.

The local-app form an administrator fills in is described in ``webhooks/README.md``.
"""


def init_app(app) -> None:
    from . import events, install

    app.register_blueprint(install.bp)
    app.register_blueprint(events.bp)

"""The web layer's own modules: the app factory, the request's store (``db``), the ``flask``
commands (``cli``), the production server (``server``) and the demo. With the blueprint packages
``webhooks/`` and ``reports/`` it is the only code that imports Flask, click or werkzeug; the core
``b24desk/`` imports none of it (tests/test_layers.py)."""

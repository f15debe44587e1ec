"""``python -m b24desk.server``: the old name of ``python -m web.server`` (see ``__main__``)."""

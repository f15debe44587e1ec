"""What ``flask --app app`` finds from the repository root: the factory lives in ``web/factory.py``."""

from web.factory import create_app

__all__ = ["create_app"]

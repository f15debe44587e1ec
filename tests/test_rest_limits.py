"""``[rest]`` in the config: the pace the server's clients keep (the portal's leaky bucket)."""

from __future__ import annotations

from b24desk.config import load_config, rest_limits


def test_default_is_the_cloud_limit_and_the_shipped_config_says_so():
    assert rest_limits({}) == {"rps": 2.0, "burst": 50}
    assert rest_limits(load_config()) == {"rps": 2.0, "burst": 50}


def test_enterprise_and_unlimited_portals_and_bad_values():
    assert rest_limits({"rest": {"rps": 5, "burst": 250}}) == {"rps": 5.0, "burst": 250}
    assert rest_limits({"rest": {"rps": 0}}) == {"rps": 0.0, "burst": 50}  # no limit
    assert rest_limits({"rest": {"rps": "fast"}}) == {"rps": 2.0, "burst": 50}
    assert rest_limits({"rest": {"rps": -1, "burst": 0}}) == {"rps": 2.0, "burst": 50}

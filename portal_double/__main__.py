"""``python -m portal_double --port N --seed S --tickets N``: serve a double until Ctrl-C."""

from __future__ import annotations

import argparse
import sys
import time

from . import PortalDouble


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m portal_double", description=__doc__)
    ap.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0 = any free port)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tickets", type=int, default=1000)
    ap.add_argument("--months", type=int, default=6)
    ap.add_argument("--drain-per-s", type=float, default=2.0, help="leaky-bucket drain (use 1e6 for no limit)")
    ap.add_argument("--bucket-size", type=int, default=50)
    ap.add_argument("--new-task-card", action="store_true", help="comments live in task chats")
    ap.add_argument("--timezone", default="Europe/Moscow")
    a = ap.parse_args(argv)
    d = PortalDouble(
        seed=a.seed,
        tickets=a.tickets,
        months=a.months,
        drain_per_s=a.drain_per_s,
        bucket_size=a.bucket_size,
        new_task_card=a.new_task_card,
        timezone=a.timezone,
        port=a.port,
    ).start()
    tokens = d.issue_tokens()
    print(f"webhook:         {d.webhook_url}", flush=True)
    print(f"client_endpoint: {d.client_endpoint}")
    print(f"oauth token url: {d.oauth_token_url}")
    print(f"client_id:       {d.client_id}")
    print(f"client_secret:   {d.client_secret}")
    print(f"access_token:    {tokens['access_token']}")
    print(f"refresh_token:   {tokens['refresh_token']}")
    print(f"member_id:       {d.member_id}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        d.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

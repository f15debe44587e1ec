"""Pushes into the portal: digests and KPI alerts, each delivery exactly once.

``data`` builds a digest (data, not text) from the KPI engine; ``states`` is the alert state
machine; ``render`` turns both into Bitrix24 text and ``ATTACH`` blocks; ``delivery`` sends one
message over the sent-log (``sentlog``) at most once; ``context`` is what a run shares (clients,
lease, settings, links); ``digests`` and ``alerts`` run them, and ``digests.after_sync`` is what
the runtime calls after each scheduled sync. Nothing here knows the web layer.
"""

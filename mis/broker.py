"""Sending Celery tasks from a request without letting a broker outage hang it.

A publish that fails (the broker is down or unreachable within
``CELERY_BROKER_CONNECT_TIMEOUT``) marks the broker down in this process for
``CELERY_BROKER_DOWN_SECONDS``: the publishes after it give up at once instead of each waiting
for its own connection timeout, so an upload whose commit has several jobs to send (thumbnails,
analysis runs) pays the timeout once. Whatever was not sent is picked up later — analysis runs
by the diagnostics sweeper, thumbnails when a page asks for them.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings

logger = logging.getLogger(__name__)

_down_until = 0.0


def send_quietly(task, args: list, *, what: str, force: bool = False) -> bool:
    """``task.apply_async(args)`` without retries; False (logged) when it was not sent.
    ``force`` tries even when the broker was found down moments ago (the sweeper)."""
    global _down_until
    now = time.monotonic()
    if now < _down_until and not force:
        logger.warning("%s not sent: the broker was unreachable moments ago", what)
        return False
    try:
        task.apply_async(args=args, retry=False)
    except Exception as exc:  # kombu/redis raise many kinds; all mean "not sent now"
        _down_until = time.monotonic() + getattr(settings, "CELERY_BROKER_DOWN_SECONDS", 10)
        logger.warning("%s not sent: %s", what, exc)
        return False
    _down_until = 0.0
    return True

"""Health endpoints: liveness, readiness (database) and a full report (database, broker, worker)."""

import time

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET


def _check_database() -> dict:
    started = time.monotonic()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "not ready"
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"ok": True, "ms": round((time.monotonic() - started) * 1000, 1)}


def _check_broker() -> dict:
    from mis.celery import app

    started = time.monotonic()
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=3)
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"ok": True, "ms": round((time.monotonic() - started) * 1000, 1)}


def _check_worker() -> dict:
    """A real round trip: a ping task on the ``health`` queue, answered by any worker."""
    from mis.celery import ping

    started = time.monotonic()
    result = None
    try:
        result = ping.apply_async(queue="health", expires=settings.HEALTH_CELERY_TIMEOUT)
        answer = result.get(timeout=settings.HEALTH_CELERY_TIMEOUT, propagate=True)
    except Exception as exc:
        return {
            "ok": False,
            "error": f"no worker answered on the 'health' queue within "
            f"{settings.HEALTH_CELERY_TIMEOUT}s ({type(exc).__name__})",
        }
    finally:
        if result is not None:
            try:
                result.forget()
            except Exception:  # cleanup only; the answer above already decided
                pass
    return {"ok": answer == "pong", "ms": round((time.monotonic() - started) * 1000, 1)}


@never_cache
@require_GET
def live(request):
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def ready(request):
    database = _check_database()
    status = 200 if database["ok"] else 503
    return JsonResponse(
        {"status": "ok" if database["ok"] else "error", "database": database}, status=status
    )


@never_cache
@require_GET
def full(request):
    checks = {"database": _check_database(), "broker": _check_broker()}
    checks["worker"] = (
        _check_worker() if checks["broker"]["ok"] else {"ok": False, "error": "broker is down"}
    )
    healthy = all(check["ok"] for check in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "error", "mode": settings.MIS_MODE, "checks": checks},
        status=200 if healthy else 503,
    )

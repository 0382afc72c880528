from celery import shared_task

from accounts.sealing import seal_pending


@shared_task(name="accounts.tasks.audit_seal", ignore_result=True)
def audit_seal() -> int:
    """Chain the audit events committed since the last run (beat, every 30 s)."""
    return seal_pending()


@shared_task(name="accounts.tasks.idempotency_purge", ignore_result=True)
def idempotency_purge() -> int:
    """Delete expired Idempotency-Key records (beat, hourly)."""
    from accounts.idempotency import idempotency_purge as purge

    return purge()

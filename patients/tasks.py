from celery import shared_task


@shared_task(name="patients.refresh_duplicates", ignore_result=True)
def refresh_duplicates() -> dict:
    """Thin: the service does the work (run it from beat, e.g. nightly)."""
    from patients.duplicates import duplicate_candidates_refresh

    return duplicate_candidates_refresh()

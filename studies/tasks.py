from celery import shared_task


@shared_task(name="studies.make_thumbnail", ignore_result=True)
def make_thumbnail(instance_id: int) -> bool:
    """Thin: the service makes the thumbnail (nothing when the instance is gone)."""
    from studies.thumbnails import thumbnail_make_by_id

    return thumbnail_make_by_id(instance_id)


@shared_task(name="studies.make_thumbnails", ignore_result=True)
def make_thumbnails(instance_ids: list[int]) -> int:
    """The thumbnails of one ingest transaction's images; how many were made."""
    from studies.thumbnails import thumbnail_make_by_id

    return sum(bool(thumbnail_make_by_id(instance_id)) for instance_id in instance_ids)

"""Reads of studies, series, instances and derived images. Every one starts from ``restrict()``;
an object outside the user's scope is a 404, the same as one that does not exist."""

from django.db.models import Count, Prefetch, QuerySet
from django.http import Http404

from accounts.permissions import restrict
from studies.filters import StudyFilter
from studies.models import DerivedImage, Instance, Series, Study

VIEW = "studies.view_study"
CHANGE = "studies.change_study"


def study_queryset(*, user, perm: str = VIEW) -> QuerySet:
    return restrict(
        Study.objects.select_related("patient", "department")
        .annotate(instance_count=Count("series__instances"))
        .order_by("-study_datetime", "-id"),
        user,
        perm,
    )


def study_filter(*, user, data) -> StudyFilter:
    """The FilterSet of the list page and the API over the studies the user may list."""
    return StudyFilter(data, queryset=study_queryset(user=user))


def study_list(*, user, filters: dict | None = None) -> QuerySet:
    """The filtered list; an invalid filter value gives nothing rather than everything."""
    filterset = study_filter(user=user, data=filters or {})
    return filterset.qs if filterset.is_valid() else filterset.queryset.none()


def _get(qs: QuerySet, pk):
    try:
        return qs.get(pk=pk)
    except (qs.model.DoesNotExist, ValueError, TypeError):
        raise Http404 from None


def study_get(*, user, pk, perm: str = VIEW) -> Study:
    return _get(study_queryset(user=user, perm=perm), pk)


def _series_with_instances() -> QuerySet:
    instances = Instance.objects.order_by("number", "id")
    return Series.objects.order_by("number", "id").prefetch_related(
        Prefetch("instances", instances)
    )


def study_series(*, study: Study) -> list[Series]:
    """A study's series with their instances (for the detail page and the API)."""
    prefetched = getattr(study, "series_list", None)
    if prefetched is not None:
        return prefetched
    instances = Instance.objects.order_by("number", "id")
    return list(
        study.series.order_by("number", "id").prefetch_related(Prefetch("instances", instances))
    )


def study_detail_get(*, user, pk, perm: str = VIEW) -> Study:
    """One study with its series and their instances (``series_list``, for ``study_series``),
    its ``instance_count`` counted from them: the same number as ``study_queryset``'s, without
    a GROUP BY over the study, its patient, department, series and instances."""
    qs = restrict(Study.objects.select_related("patient", "department"), user, perm)
    study = _get(
        qs.prefetch_related(Prefetch("series", _series_with_instances(), to_attr="series_list")),
        pk,
    )
    study.instance_count = sum(len(series.instances.all()) for series in study.series_list)
    return study


def series_queryset(*, user, perm: str = VIEW) -> QuerySet:
    return restrict(Series.objects.select_related("study__patient"), user, perm)


def series_get(*, user, pk, perm: str = VIEW) -> Series:
    return _get(series_queryset(user=user, perm=perm).prefetch_related("instances"), pk)


def instance_queryset(*, user, perm: str = VIEW) -> QuerySet:
    return restrict(Instance.objects.select_related("series__study__patient"), user, perm)


def instance_get(*, user, pk, perm: str = VIEW) -> Instance:
    return _get(instance_queryset(user=user, perm=perm), pk)


def patient_studies(*, user, patient_id: int, limit: int = 50) -> list[Study]:
    """A patient's studies the user may see, newest first, with one thumbnail instance each."""
    studies = list(study_queryset(user=user).filter(patient_id=patient_id)[:limit])
    first_images = {}
    for instance in (
        Instance.objects.filter(series__study__in=[s.pk for s in studies], document_kind="")
        .exclude(file="")
        .order_by("series__number", "number", "id")
        .values("pk", "series__study_id")
    ):
        first_images.setdefault(instance["series__study_id"], instance["pk"])
    for study in studies:
        study.thumbnail_instance_id = first_images.get(study.pk)
    return studies


def thumbnail_of(*, instance: Instance, frame: int = 0) -> DerivedImage | None:
    return DerivedImage.objects.filter(
        instance=instance, frame=frame, kind=DerivedImage.Kind.THUMBNAIL, source="render"
    ).first()


def upload_departments(*, user) -> list:
    """The departments a user may upload for: their own active ones (any active department for
    an account that belongs to none, such as a modality's service account)."""
    from accounts.models import Department

    if user is None or not user.is_authenticated:
        return []
    own = list(user.departments.filter(is_active=True))
    return own or list(Department.objects.filter(is_active=True))

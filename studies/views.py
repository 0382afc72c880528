from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from accounts.audit import Actor, audit_list, audit_view
from accounts.permissions import can
from studies import selectors, services
from studies.dicom.errors import DicomError
from studies.dicom.parse import read_dataset
from studies.export import EXPORT_PERM
from studies.forms import StudyEditForm
from studies.ingest import ADD_PERM
from studies.models import Category, Urgency
from studies.responses import NoImage, export_response, original_response, thumbnail_response
from studies.tags import dataset_rows

PAGE_SIZE = 25


def _require(request, perm: str) -> None:
    if not can(request.user, perm):
        raise PermissionDenied


@login_required
@require_GET
def study_list(request):
    _require(request, selectors.VIEW)
    filterset = selectors.study_filter(user=request.user, data=request.GET)
    results = filterset.qs if filterset.is_valid() else filterset.queryset.none()
    page = Paginator(results, PAGE_SIZE).get_page(request.GET.get("page"))
    audit_list(
        actor=Actor.from_request(request),
        object_type="studies.study",
        query={k: v for k, v in request.GET.items() if k != "page"},
        patient_ids=sorted({s.patient_id for s in page.object_list}),
        page=page.number,
    )
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "studies/study_list.html",
        {
            "filter": filterset,
            "page": page,
            "query": query.urlencode(),
            "can_upload": can(request.user, ADD_PERM),
        },
    )


def _tag_browser(user, request):
    """The tags of the instance named by ``?tags=<id>`` (within the user's scope)."""
    pk = request.GET.get("tags")
    if not pk:
        return None, [], ""
    instance = selectors.instance_get(user=user, pk=pk)
    if not instance.file:
        return instance, [], _("The images of this instance were removed.")
    from django.core.files.storage import default_storage

    try:
        with default_storage.open(instance.file.name, "rb") as handle:
            dataset = read_dataset(handle, stop_before_pixels=True)
    except (DicomError, OSError) as exc:
        return instance, [], _("The file cannot be read: %(reason)s") % {"reason": exc}
    return instance, dataset_rows(dataset), ""


@login_required
@require_http_methods(["GET", "POST"])
def study_detail(request, pk: int):
    _require(request, selectors.VIEW)
    study = selectors.study_get(user=request.user, pk=pk)
    can_change = can(request.user, selectors.CHANGE)
    form = StudyEditForm(instance=study)
    if request.method == "POST":
        if not can_change:
            raise PermissionDenied
        form = StudyEditForm(request.POST, instance=selectors.study_get(user=request.user, pk=pk))
        if form.is_valid():
            try:
                services.study_update(
                    actor=Actor.from_request(request), study=study, data=form.cleaned_data
                )
            except ValidationError as exc:
                form.add_error(None, exc.messages)
            else:
                messages.success(request, _("Changes saved."))
                return redirect(reverse("studies:detail", args=[study.pk]))
    series = selectors.study_series(study=study)
    tag_instance, tags, tag_error = _tag_browser(request.user, request)
    if tag_instance is not None and tag_instance.series.study_id != study.pk:
        raise Http404
    audit_view(actor=Actor.from_request(request), obj=study)
    images = [(s, [i for i in s.instances.all() if i.is_image]) for s in series]
    documents = [i for s in series for i in s.instances.all() if not i.is_image]
    return render(
        request,
        "studies/study_detail.html",
        {
            "study": study,
            "series": [(s, imgs) for s, imgs in images if imgs],
            "documents": documents,
            "form": form,
            "can_change": can_change,
            "can_export": can(request.user, EXPORT_PERM),
            "can_remove_images": can(request.user, services.REMOVE_PERM)
            and not study.images_removed_at,
            "tag_instance": tag_instance,
            "tags": tags,
            "tag_error": tag_error,
        },
    )


@login_required
@require_GET
def instance_file(request, pk: int):
    _require(request, selectors.VIEW)
    try:
        return original_response(request, selectors.instance_get(user=request.user, pk=pk))
    except NoImage:
        raise Http404 from None


@login_required
@require_GET
def instance_thumbnail(request, pk: int):
    _require(request, selectors.VIEW)
    return thumbnail_response(request, selectors.instance_get(user=request.user, pk=pk))


@login_required
@require_GET
def upload(request):
    _require(request, ADD_PERM)
    departments = selectors.upload_departments(user=request.user)
    return render(
        request,
        "studies/upload.html",
        {
            "departments": departments,
            "default_department": departments[0].code if len(departments) == 1 else "",
            "categories": Category.choices,
            "urgencies": Urgency.choices,
            "api_url": reverse("instance-list"),
        },
    )


@login_required
@require_GET
def study_export(request, pk: int):
    _require(request, EXPORT_PERM)
    study = selectors.study_get(user=request.user, pk=pk, perm=EXPORT_PERM)
    return export_response(Actor.from_request(request), [study], f"study-{study.pk}.zip")


@login_required
@require_GET
def patient_export(request, patient_id: int):
    _require(request, EXPORT_PERM)
    studies = list(
        selectors.study_queryset(user=request.user, perm=EXPORT_PERM).filter(patient_id=patient_id)
    )
    if not studies:
        raise Http404
    return export_response(
        Actor.from_request(request), studies, f"patient-{patient_id}-studies.zip"
    )


@login_required
@require_http_methods(["POST"])
def study_remove_images(request, pk: int):
    _require(request, services.REMOVE_PERM)
    study = selectors.study_get(user=request.user, pk=pk, perm=services.REMOVE_PERM)
    try:
        count = services.images_remove(
            actor=Actor.from_request(request), target=study, reason=request.POST.get("reason", "")
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(
            request, _("The image files of %(count)d instances were removed.") % {"count": count}
        )
    return redirect(reverse("studies:detail", args=[study.pk]))

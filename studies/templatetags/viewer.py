"""The viewer's configuration (series, frames, URLs, labels, what the user may do) as a dict
that the template hands to static/js/viewer.js with ``json_script``."""

from django import template
from django.urls import reverse
from django.utils.translation import gettext as _

from accounts.permissions import can
from studies import annotations, selectors
from studies.frame_urls import TOKEN_PARAM, frame_grant, viewer_series
from studies.models import FindingCode

register = template.Library()

# Frames larger than this on a side are fetched downsampled (area mean) by default.
VIEWER_MAX_SIZE = 2048


@register.simple_tag(takes_context=True)
def viewer_config(context, study, viewer_id="main"):
    request = context["request"]
    user = request.user
    series, images = viewer_series(study)
    for s in series:
        s["thumbnail"] = reverse("instance-thumbnail", args=[s.pop("first_instance")])  # the API's
    # The page's view found the study through restrict() and audited it: its frames come
    # through signed URLs inside that viewing window (studies/frame_urls.py).
    grant = frame_grant(request=request, study=study, instances=images)
    priors = [
        {
            "id": s.pk,
            "label": f"{s.study_datetime:%Y-%m-%d} {s.get_category_display()}"
            if s.study_datetime
            else f"#{s.pk} {s.get_category_display()}",
        }
        for s in selectors.study_queryset(user=user).filter(patient_id=study.patient_id)
        if s.pk != study.pk
    ]
    return {
        "id": viewer_id,
        "dom_id": f"viewer-config-{viewer_id}",
        "text": {
            "loading": _("Loading…"),
            "error": _("This image cannot be shown: %(reason)s"),
            "image": _("Image %(n)s of %(total)s"),
            "frame": _("frame %(n)s"),
            "delete": _("Delete"),
            "edit": _("Edit"),
            "confirm_delete": _("Delete this annotation?"),
            "none": _("No annotations on this image."),
            "by": _("by %(name)s"),
            "no_spacing": _("px (no pixel spacing)"),
            "value": _("Value"),
            "saved": _("Annotation saved."),
        },
        "study": study.pk,
        "series": series,
        "max_size": VIEWER_MAX_SIZE,
        "frames": {
            "param": TOKEN_PARAM,
            "token": grant["token"] if grant else None,
            "expires": grant["expires"] if grant else None,
        },
        "user": user.pk,
        "can_annotate": can(user, annotations.ADD),
        "can_see_annotations": can(user, annotations.VIEW),
        "labels": [
            {"code": c.code, "name": c.name} for c in FindingCode.offered_for(study.category)
        ],
        "urls": {
            "raw": reverse("instance-frame-raw", args=[0, 0]).replace("/0/frames/0.raw", ""),
            "overlays": reverse("instance-overlays", args=[0]).replace("/0/overlays/", ""),
            "annotations": reverse("annotation-list"),
            "grant": reverse("study-viewer-frames", args=[study.pk]),
            "fullscreen": reverse("studies:viewer", args=[study.pk]),
            "compare": reverse("studies:compare", args=[study.pk, 0]).rsplit("/0/", 1)[0],
        },
        "priors": priors,
    }

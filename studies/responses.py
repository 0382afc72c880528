"""Responses that send an instance's files and images, shared by the pages and the API.
Callers find the instance through the selectors (scope) first."""

from __future__ import annotations

from django.http import Http404, HttpResponse
from django.utils.translation import gettext as _

from accounts.audit import VIEW, Actor, audit_view
from accounts.protected_files import protected_file_response
from studies.dicom.errors import DicomError, FrameIndexError, NoPixelDataError
from studies.models import Instance
from studies.thumbnails import thumbnail_make


class NoImage(Http404):
    """Not found, with a message the API passes on."""


def _require_file(instance: Instance) -> None:
    if not instance.file:
        raise NoImage(_("The images of this instance were removed."))


def original_response(request, instance: Instance):
    """The stored DICOM file as an attachment (audited as a download)."""
    _require_file(instance)
    return protected_file_response(
        request,
        name=instance.file.name,
        object_type="studies.instance",
        object_id=instance.pk,
        patient_id=instance.series.study.patient_id,
        download_name=f"{instance.sop_instance_uid}.dcm",
        content_type="application/dicom",
    )


def thumbnail_response(request, instance: Instance):
    """The instance's thumbnail, made now when it is still missing (audited as a view)."""
    _require_file(instance)
    if not instance.is_image:
        raise NoImage(_("This instance is a document; it has no image."))
    derived = thumbnail_make(instance=instance)
    if derived is None:
        raise NoImage(_("This image cannot be rendered."))
    response = protected_file_response(
        request,
        name=derived.file.name,
        object_type="studies.derivedimage",
        object_id=derived.pk,
        patient_id=instance.series.study.patient_id,
        download_name=f"{instance.sop_instance_uid}-thumbnail.png",
        content_type="image/png",
        as_attachment=False,
        action=VIEW,
        viewing_window_of=instance.series.study,  # thumbnails count inside the study's window
    )
    return response


def frame_response(request, instance: Instance, *, frame: int, window=None, max_size=None):
    """One frame rendered to an 8-bit PNG (audited as a view of the instance)."""
    _require_file(instance)
    if not instance.is_image:
        raise NoImage(_("This instance is a document; it has no image."))
    from studies import frames  # (frames imports this module)

    try:  # rendered once per file, frame, window and size, then read from the frame cache
        png = frames.rendered_png(
            frames.cache_key(instance), frames._source(instance), frame, window, max_size
        )
    except FrameIndexError:
        raise NoImage(
            _("There is no frame %(frame)d: this instance has %(count)d frame(s), from 0.")
            % {"frame": frame, "count": instance.frames}
        ) from None
    except NoPixelDataError:
        raise NoImage(_("This instance is a document; it has no image.")) from None
    except DicomError as exc:
        raise NoImage(_("This image cannot be rendered: %(reason)s") % {"reason": exc}) from None
    except OSError:
        raise NoImage(
            _("The stored file of this image cannot be read; ask an administrator to check it.")
        ) from None
    audit_view(  # frames count inside the study's viewing window
        actor=Actor.from_request(request),
        obj=instance.series.study,
        details={"instance": instance.pk, "frame": frame, "rendered": True},
    )
    response = HttpResponse(png, content_type="image/png")
    response["Cache-Control"] = "private, no-store"
    return response


def export_response(actor: Actor, studies: list, filename: str):
    """Studies as a CD ZIP (audited as an export), built in a temporary file, never in memory."""
    import tempfile

    from django.http import FileResponse

    from studies.export import export_zip

    handle = tempfile.TemporaryFile()
    export_zip(actor=actor, studies=studies, out=handle)
    handle.seek(0)
    return FileResponse(
        handle, as_attachment=True, filename=filename, content_type="application/zip"
    )

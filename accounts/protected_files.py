"""The one way a stored file leaves the system.

Callers find the object through ``restrict()`` first; this helper audits the download and then
streams the file (``FileResponse``, embedded mode) or hands it to nginx (``X-Accel-Redirect``).
Media has no public URL.
"""

from django.conf import settings
from django.core.files.storage import default_storage
from django.http import FileResponse, HttpResponse

from accounts.audit import DOWNLOAD, Actor, audit_record, audit_view


def protected_file_response(
    request,
    *,
    name: str,
    object_type: str,
    object_id: str | int,
    patient_id: int | None,
    download_name: str,
    content_type: str | None = None,
    as_attachment: bool = True,
    action: str = DOWNLOAD,
    storage=None,
    viewing_window_of=None,
) -> HttpResponse:
    """Audit the read of ``name`` (a path in the storage) and return the response that sends it.

    ``viewing_window_of`` (e.g. the study a thumbnail shows) counts an inline view inside that
    object's 15-minute viewing window instead of writing an event of its own; downloads are
    always their own event.
    """
    storage = storage or default_storage
    if viewing_window_of is not None:
        audit_view(
            actor=Actor.from_request(request),
            obj=viewing_window_of,
            patient_id=patient_id,
            details={"file": download_name},
        )
    else:
        audit_record(
            actor=Actor.from_request(request),
            action=action,
            object_type=object_type,
            object_id=object_id,
            patient_id=patient_id,
            details={"file": download_name},
        )
    if settings.PROTECTED_FILES_BACKEND == "nginx":
        response = HttpResponse(content_type=content_type or "application/octet-stream")
        response["X-Accel-Redirect"] = settings.PROTECTED_FILES_NGINX_PREFIX + name
        disposition = "attachment" if as_attachment else "inline"
        response["Content-Disposition"] = f'{disposition}; filename="{download_name}"'
        return response
    response = FileResponse(
        storage.open(name, "rb"),
        as_attachment=as_attachment,
        filename=download_name,
        content_type=content_type,
    )
    response["Cache-Control"] = "private, no-store"
    return response

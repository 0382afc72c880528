import json
from collections import Counter

from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import exceptions, mixins, renderers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.audit import Actor, audit_list, audit_view
from accounts.idempotency import idempotent
from accounts.permissions import PermissionByAction
from studies import selectors, services
from studies.api.serializers import (
    InstanceDetailSerializer,
    RemoveImagesSerializer,
    SeriesDetailSerializer,
    StudyDetailSerializer,
    StudySerializer,
    UploadResultSerializer,
    UploadSerializer,
)
from studies.export import EXPORT_PERM
from studies.filters import StudyFilter
from studies.forms import FrameParamsForm
from studies.ingest import ADD_PERM, StudyFields
from studies.responses import (
    NoImage,
    export_response,
    frame_response,
    original_response,
    thumbnail_response,
)
from studies.uploads import IngestUploadHandler, ingest_uploads


class PNGRenderer(renderers.BaseRenderer):
    """Lets a client ask for ``image/png``; an error body is still JSON."""

    media_type = "image/png"
    format = "png"
    charset = None
    render_style = "binary"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, bytes):
            return data
        return json.dumps(data).encode()


class ZipRenderer(PNGRenderer):
    media_type = "application/zip"
    format = "zip"


class DicomRenderer(PNGRenderer):
    media_type = "application/dicom"
    format = "dcm"


@extend_schema_view(
    list=extend_schema(summary="List studies (filters as on the study list page)"),
    retrieve=extend_schema(summary="One study with its series and instances"),
    partial_update=extend_schema(
        summary="Change a study's category, body part, view, clinical question or urgency"
    ),
)
class StudyViewSet(
    PermissionByAction,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    filterset_class = StudyFilter
    http_method_names = ["get", "patch", "post", "head", "options"]
    ordering_fields = ["study_datetime", "created_at"]

    default_perm = selectors.VIEW
    action_perms = {
        "partial_update": selectors.CHANGE,
        "export": EXPORT_PERM,
        "patient_export": EXPORT_PERM,
        "remove_images": services.REMOVE_PERM,
    }

    def get_serializer_class(self):
        return StudySerializer if self.action == "list" else StudyDetailSerializer

    @extend_schema(
        summary="Export the study as a ZIP with a DICOMDIR (a CD image); audited as an export",
        responses={(200, "application/zip"): OpenApiTypes.BINARY},
    )
    @action(detail=True, methods=["get"], renderer_classes=[ZipRenderer, renderers.JSONRenderer])
    def export(self, request, pk=None):
        study = self.get_object()
        return export_response(Actor.from_request(request), [study], f"study-{study.pk}.zip")

    @extend_schema(
        summary="Export all of a patient's studies you may export as one ZIP with a DICOMDIR",
        parameters=[
            OpenApiParameter("patient", int, required=True, description="The patient's id.")
        ],
        responses={
            (200, "application/zip"): OpenApiTypes.BINARY,
            404: OpenApiResponse(description="No study of this patient that you may export."),
        },
    )
    @action(
        detail=False,
        methods=["get"],
        url_path="patient-export",
        renderer_classes=[ZipRenderer, renderers.JSONRenderer],
    )
    def patient_export(self, request):
        raw = request.query_params.get("patient", "")
        if not raw.isdigit():
            raise exceptions.ValidationError({"patient": [_("Give the patient's id.")]})
        studies = list(self.get_queryset().filter(patient_id=int(raw)))
        if not studies:
            raise exceptions.NotFound()
        return export_response(Actor.from_request(request), studies, f"patient-{raw}-studies.zip")

    @extend_schema(
        summary="Remove the image files of the study, keeping the record (reason required)",
        request=RemoveImagesSerializer,
        responses={200: StudyDetailSerializer},
    )
    @action(detail=True, methods=["post"], url_path="remove-images")
    def remove_images(self, request, pk=None):
        study = self.get_object()
        payload = RemoveImagesSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        services.images_remove(
            actor=Actor.from_request(request), target=study, reason=payload.validated_data["reason"]
        )
        study.refresh_from_db()
        return Response(StudyDetailSerializer(study, context={"request": request}).data)

    def get_queryset(self):
        return selectors.study_queryset(user=self.request.user, perm=self.required_perm())

    def list(self, request, *args, **kwargs):
        response = super().list(request, *args, **kwargs)
        audit_list(
            actor=Actor.from_request(request),
            object_type="studies.study",
            query=dict(request.query_params.items()),
            patient_ids=sorted({row["patient"] for row in response.data.get("results", [])}),
        )
        return response

    def retrieve(self, request, *args, **kwargs):
        study = selectors.study_detail_get(
            user=request.user, pk=kwargs["pk"], perm=self.required_perm()
        )
        self.check_object_permissions(request, study)
        audit_view(actor=Actor.from_request(request), obj=study)
        return Response(self.get_serializer(study).data)

    def perform_update(self, serializer):
        serializer.instance = services.study_update(
            actor=Actor.from_request(self.request),
            study=serializer.instance,
            data=dict(serializer.validated_data),
        )


def _remove_images(request, target, study):
    payload = RemoveImagesSerializer(data=request.data)
    payload.is_valid(raise_exception=True)
    services.images_remove(
        actor=Actor.from_request(request), target=target, reason=payload.validated_data["reason"]
    )
    study.refresh_from_db()
    return Response(StudyDetailSerializer(study, context={"request": request}).data)


@extend_schema_view(retrieve=extend_schema(summary="One series with its instances"))
class SeriesViewSet(PermissionByAction, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = SeriesDetailSerializer
    default_perm = selectors.VIEW
    action_perms = {"remove_images": services.REMOVE_PERM}

    def get_queryset(self):
        return selectors.series_queryset(
            user=self.request.user, perm=self.required_perm()
        ).prefetch_related("instances")

    @extend_schema(
        summary="Remove the image files of the series, keeping the records (reason required)",
        request=RemoveImagesSerializer,
        responses={200: StudyDetailSerializer},
    )
    @action(detail=True, methods=["post"], url_path="remove-images")
    def remove_images(self, request, pk=None):
        series = self.get_object()
        study = selectors.study_queryset(user=request.user, perm=self.required_perm()).get(
            pk=series.study_id
        )
        return _remove_images(request, series, study)

    def retrieve(self, request, *args, **kwargs):
        series = self.get_object()
        audit_view(actor=Actor.from_request(request), obj=series.study)
        return Response(self.get_serializer(series).data)


def _not_found(exc: NoImage):
    message = str(exc) or _("Not found.")
    return exceptions.NotFound(message)


@extend_schema_view(retrieve=extend_schema(summary="One instance"))
class InstanceViewSet(PermissionByAction, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = InstanceDetailSerializer
    default_perm = selectors.VIEW
    action_perms = {"create": ADD_PERM, "remove_images": services.REMOVE_PERM}

    def get_queryset(self):
        return selectors.instance_queryset(user=self.request.user, perm=self.required_perm())

    def initial(self, request, *args, **kwargs):
        # Before anything reads the body: the session's CSRF check (in authentication) reads
        # request.POST, then the idempotency check. The handler only hashes and holds the files.
        if self.action == "create":
            request._request.upload_handlers = [IngestUploadHandler(request._request)]
        super().initial(request, *args, **kwargs)

    @extend_schema(
        summary="Remove the image file of the instance, keeping the record (reason required)",
        request=RemoveImagesSerializer,
        responses={200: StudyDetailSerializer},
    )
    @action(detail=True, methods=["post"], url_path="remove-images")
    def remove_images(self, request, pk=None):
        instance = self.get_object()
        study = selectors.study_queryset(user=request.user, perm=self.required_perm()).get(
            pk=instance.series.study_id
        )
        return _remove_images(request, instance, study)

    def retrieve(self, request, *args, **kwargs):
        instance = self.get_object()
        audit_view(actor=Actor.from_request(request), obj=instance.series.study)
        return Response(self.get_serializer(instance).data)

    @extend_schema(
        summary="Upload files (DICOM, PNG, JPEG or a ZIP): one result per file",
        request={"multipart/form-data": UploadSerializer},
        responses={200: UploadResultSerializer},
        examples=[
            OpenApiExample(
                "One DICOM file imported",
                response_only=True,
                value={
                    "results": [
                        {
                            "name": "chest.dcm",
                            "status": "imported",
                            "message": "",
                            "study": 42,
                            "instance": 1001,
                            "patient": 7,
                            "warnings": [],
                        }
                    ],
                    "counts": {"imported": 1, "duplicate": 0, "rejected": 0},
                },
            )
        ],
    )
    @idempotent
    def create(self, request, *args, **kwargs):
        upload = UploadSerializer(data=request.data, context={"request": request})
        upload.is_valid(raise_exception=True)
        data = upload.validated_data
        fields = StudyFields(
            department=data.get("department"),
            patient=data.get("patient"),
            study=data.get("study"),
            category=data.get("category", ""),
            body_part=data.get("body_part", ""),
            view_position=data.get("view_position", ""),
            clinical_question=data.get("clinical_question", ""),
            urgency=data.get("urgency", ""),
        )
        actor = Actor.from_request(request)
        results = [
            r.as_dict() for r in ingest_uploads(actor=actor, uploads=data["file"], fields=fields)
        ]
        counts = Counter(r["status"] for r in results)
        body = {
            "results": results,
            "counts": {k: counts[k] for k in ("imported", "duplicate", "rejected")},
        }
        return Response(body, status=status.HTTP_200_OK)

    @extend_schema(
        summary="Download the original DICOM file (audited)",
        responses={(200, "application/dicom"): OpenApiTypes.BINARY},
    )
    @action(detail=True, methods=["get"], renderer_classes=[renderers.JSONRenderer, DicomRenderer])
    def file(self, request, pk=None):
        try:
            return original_response(request, self.get_object())
        except NoImage as exc:
            raise _not_found(exc) from None

    @extend_schema(
        summary="The instance's thumbnail (PNG, made on demand)",
        responses={(200, "image/png"): OpenApiTypes.BINARY},
    )
    def thumbnail(self, request, pk=None):
        try:
            return thumbnail_response(request, self.get_object())
        except NoImage as exc:
            raise _not_found(exc) from None

    @extend_schema(
        summary="One frame rendered to an 8-bit PNG",
        parameters=[
            OpenApiParameter("frame", int, OpenApiParameter.PATH, description="From 0."),
            OpenApiParameter("window", str, description="centre,width, e.g. 40,400"),
            OpenApiParameter("max_size", int, description="Longest side in pixels."),
        ],
        responses={(200, "image/png"): OpenApiTypes.BINARY, 404: OpenApiResponse()},
    )
    def frame(self, request, pk=None, frame=None):
        instance = self.get_object()
        params = FrameParamsForm(request.query_params)
        if not params.is_valid():
            raise exceptions.ValidationError(params.errors)
        try:
            return frame_response(
                request,
                instance,
                frame=int(frame),
                window=params.cleaned_data["window"],
                max_size=params.cleaned_data["max_size"],
            )
        except NoImage as exc:
            raise _not_found(exc) from None

"""The viewer's API: raw full-depth frames, overlay images and annotations."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, renderers, serializers, throttling, viewsets
from rest_framework.response import Response

from accounts.audit import VIEW as AUDIT_VIEW
from accounts.audit import Actor, audit_list, audit_view
from accounts.permissions import PermissionByAction
from accounts.protected_files import protected_file_response
from studies import annotations, selectors
from studies.api.views import PNGRenderer, _not_found
from studies.filters import AnnotationFilter
from studies.frame_urls import TOKEN_PARAM, frame_grant, viewer_series
from studies.frames import raw_frame_response
from studies.models import Annotation, DerivedImage, FindingCode
from studies.responses import NoImage


class FrameRateThrottle(throttling.UserRateThrottle):
    """Scrolling a 500-slice CT with prefetch is many requests a minute; still bounded."""

    scope = "frames"
    rate = "6000/min"


class OctetRenderer(PNGRenderer):
    media_type = "application/octet-stream"
    format = "raw"


class RawFrameParams(serializers.Serializer):
    max_size = serializers.IntegerField(required=False, min_value=64, max_value=16384)


class ViewerInstanceViewSet(PermissionByAction, viewsets.GenericViewSet):
    """Per-instance reads of the viewer, scoped like every instance read."""

    default_perm = selectors.VIEW
    throttle_classes = [FrameRateThrottle]

    def get_queryset(self):
        return selectors.instance_queryset(user=self.request.user)

    @extend_schema(
        summary="One frame at full bit depth: little-endian pixels, metadata in X-Frame-Metadata",
        description=(
            "Grey frames are modality values (HU for CT) as int16, uint16, int32 or float32; "
            "colour frames are RGB bytes. The X-Frame-Metadata header (JSON) gives rows, "
            "columns, dtype, min/max, rescale slope/intercept, the header's windows, "
            "photometric interpretation, pixel spacing and the downsampling scale. Cached."
        ),
        parameters=[
            OpenApiParameter("frame", int, OpenApiParameter.PATH, description="From 0."),
            OpenApiParameter(
                "max_size", int, description="Downsample so neither side exceeds this."
            ),
        ],
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY, 404: OpenApiResponse()},
    )
    def raw(self, request, pk=None, frame=None):
        instance = self.get_object()
        params = RawFrameParams(data=request.query_params)
        params.is_valid(raise_exception=True)
        try:
            return raw_frame_response(
                request, instance, frame=int(frame), max_size=params.validated_data.get("max_size")
            )
        except NoImage as exc:
            raise _not_found(exc) from None

    @extend_schema(
        summary="Images derived from the instance other than thumbnails (e.g. AI heatmaps)",
        responses={200: OpenApiTypes.OBJECT},
    )
    def overlays(self, request, pk=None):
        instance = self.get_object()
        audit_view(actor=Actor.from_request(request), obj=instance.series.study)
        rows = (
            DerivedImage.objects.filter(instance=instance)
            .exclude(kind=DerivedImage.Kind.THUMBNAIL)
            .order_by("frame", "kind", "source", "label")
        )
        return Response(
            {
                "results": [
                    {
                        "id": d.pk,
                        "frame": d.frame,
                        "kind": d.kind,
                        "source": d.source,
                        "label": d.label,
                        "width": d.width,
                        "height": d.height,
                        "url": reverse("derived-image", args=[d.pk]),
                    }
                    for d in rows
                ]
            }
        )


class StudyViewerViewSet(PermissionByAction, viewsets.GenericViewSet):
    """What a viewer loads first: the study's series and signed frame URLs."""

    default_perm = selectors.VIEW

    def get_queryset(self):
        return selectors.study_queryset(user=self.request.user)

    @extend_schema(
        summary="The study's images for a viewer, with signed frame URLs",
        description=(
            "Series and image instances (frames, rows, columns) and URL templates for their "
            "frames (`{instance}`, `{frame}`), signed for the requesting user and credential: "
            "the same session cookie or Authorization header must come with each frame "
            "request. They expire at `expires` (seconds since the epoch; FRAME_URL_TTL, never "
            "past the end of the viewing window this request is audited in); ask again then. "
            "A signed raw frame of an uncompressed grey image holds *stored* values: its "
            "metadata says `rescaled: false` (apply rescale_slope/rescale_intercept, and mask "
            "unsigned values to bits_stored) and leaves min/max null. An expired or otherwise "
            "refused signature is answered by the ordinary endpoint (scope checked, audited)."
        ),
        responses={200: OpenApiTypes.OBJECT},
    )
    def frames(self, request, pk=None):
        study = self.get_object()
        audit_view(actor=Actor.from_request(request), obj=study)
        series, images = viewer_series(study)
        for s in series:
            s.pop("first_instance")
        grant = frame_grant(request=request, study=study, instances=images)
        suffix = f"?{TOKEN_PARAM}={grant['token']}" if grant else ""
        return Response(
            {
                "study": study.pk,
                "expires": grant["expires"] if grant else None,
                "token": grant["token"] if grant else None,
                "urls": {
                    kind: reverse(name, args=[0, 0]).replace(
                        "/0/frames/0.", "/{instance}/frames/{frame}."
                    )
                    + suffix
                    for kind, name in (("raw", "instance-frame-raw"), ("png", "instance-frame"))
                },
                "series": series,
            }
        )


class DerivedImageViewSet(PermissionByAction, viewsets.GenericViewSet):
    default_perm = selectors.VIEW
    throttle_classes = [FrameRateThrottle]

    def get_queryset(self):
        from accounts.permissions import restrict

        return restrict(
            DerivedImage.objects.select_related("instance__series__study"),
            self.request.user,
            selectors.VIEW,
        )

    @extend_schema(
        summary="A derived image (heatmap, overlay) as PNG",
        responses={(200, "image/png"): OpenApiTypes.BINARY},
    )
    def image(self, request, pk=None):
        derived = self.get_object()
        study = derived.instance.series.study
        return protected_file_response(
            request,
            name=derived.file.name,
            object_type="studies.derivedimage",
            object_id=derived.pk,
            patient_id=study.patient_id,
            download_name=f"{derived.kind}-{derived.pk}.png",
            content_type="image/png",
            as_attachment=False,
            action=AUDIT_VIEW,
            viewing_window_of=study,
        )


class AnnotationSerializer(serializers.ModelSerializer):
    label = serializers.SlugRelatedField(
        slug_field="code", queryset=FindingCode.objects.all(), help_text=_("A finding code.")
    )
    label_name = serializers.CharField(source="label.name", read_only=True)
    author_name = serializers.SerializerMethodField()
    can_edit = serializers.SerializerMethodField()
    study = serializers.IntegerField(source="instance.series.study_id", read_only=True)

    class Meta:
        model = Annotation
        fields = [
            "id",
            "instance",
            "study",
            "frame",
            "shape",
            "x",
            "y",
            "width",
            "height",
            "angle",
            "label",
            "label_name",
            "comment",
            "author",
            "author_name",
            "can_edit",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["author", "created_at", "updated_at"]

    def get_author_name(self, annotation) -> str:
        author = annotation.author
        return getattr(author, "display_name", "") or author.get_username()

    def get_can_edit(self, annotation) -> bool:
        request = self.context.get("request")
        return bool(request and request.user.pk == annotation.author_id)

    def validate_instance(self, instance):
        """The instance must lie in the user's scope: otherwise it does not exist for them."""
        request = self.context["request"]
        if not selectors.instance_queryset(user=request.user).filter(pk=instance.pk).exists():
            raise serializers.ValidationError(_("No such instance."))
        return instance


def _drf(exc: DjangoValidationError) -> exceptions.ValidationError:
    return exceptions.ValidationError(
        exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
    )


class AnnotationViewSet(PermissionByAction, viewsets.ModelViewSet):
    """Annotations on images. Radiologists add them; the author alone changes or deletes one."""

    serializer_class = AnnotationSerializer
    filterset_class = AnnotationFilter
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    default_perm = annotations.VIEW
    action_perms = {
        "create": annotations.ADD,
        "partial_update": annotations.CHANGE,
        "destroy": annotations.DELETE_PERM,
    }
    ordering_fields = ["created_at", "frame"]

    def get_queryset(self):
        return annotations.annotation_queryset(user=self.request.user).order_by(
            "instance", "frame", "id"
        )

    def list(self, request, *args, **kwargs):
        response = super().list(request, *args, **kwargs)
        ids = [row["id"] for row in response.data.get("results", [])]
        patient_ids = sorted(
            set(
                Annotation.objects.filter(pk__in=ids).values_list(
                    "instance__series__study__patient_id", flat=True
                )
            )
        )
        audit_list(
            actor=Actor.from_request(request),
            object_type="studies.annotation",
            query=dict(request.query_params.items()),
            patient_ids=patient_ids,
        )
        return response

    def retrieve(self, request, *args, **kwargs):
        annotation = self.get_object()
        audit_view(actor=Actor.from_request(request), obj=annotation.instance.series.study)
        return Response(self.get_serializer(annotation).data)

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        try:
            serializer.instance = annotations.annotation_create(
                actor=Actor.from_request(self.request), **data
            )
        except DjangoValidationError as exc:
            raise _drf(exc) from None

    def perform_update(self, serializer):
        data = dict(serializer.validated_data)
        data.pop("instance", None)  # an annotation stays on its image
        try:
            serializer.instance = annotations.annotation_update(
                actor=Actor.from_request(self.request), annotation=serializer.instance, **data
            )
        except DjangoValidationError as exc:
            raise _drf(exc) from None
        except PermissionDenied as exc:
            raise exceptions.PermissionDenied(str(exc)) from None

    def perform_destroy(self, instance):
        try:
            annotations.annotation_delete(
                actor=Actor.from_request(self.request), annotation=instance
            )
        except PermissionDenied as exc:
            raise exceptions.PermissionDenied(str(exc)) from None


RAW_RENDERERS = [renderers.JSONRenderer, OctetRenderer]
PNG_RENDERERS = [renderers.JSONRenderer, PNGRenderer]

urlpatterns = [
    path(
        "instances/<int:pk>/frames/<int:frame>.raw",
        ViewerInstanceViewSet.as_view({"get": "raw"}, renderer_classes=RAW_RENDERERS),
        name="instance-frame-raw",
    ),
    path(
        "studies/<int:pk>/viewer/",
        StudyViewerViewSet.as_view({"get": "frames"}),
        name="study-viewer-frames",
    ),
    path(
        "instances/<int:pk>/overlays/",
        ViewerInstanceViewSet.as_view({"get": "overlays"}),
        name="instance-overlays",
    ),
    path(
        "derived/<int:pk>.png",
        DerivedImageViewSet.as_view({"get": "image"}, renderer_classes=PNG_RENDERERS),
        name="derived-image",
    ),
]

import hashlib

from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.audit import Actor, audit_list, audit_record, audit_view
from accounts.permissions import PermissionByAction, can
from diagnostics import selectors, services
from diagnostics.api.serializers import (
    AIModelSerializer,
    AnalysisRunDetailSerializer,
    AnalysisRunSerializer,
    FeedbackResultSerializer,
    FeedbackSerializer,
    FindingSerializer,
    PredictRequestSerializer,
    PredictResponseSerializer,
    RunRequestSerializer,
)
from diagnostics.filters import AnalysisRunFilter
from diagnostics.models import AIModel, Finding
from diagnostics.registry import model_resolve
from mis.api import error_body
from studies import selectors as study_selectors

ERROR = OpenApiResponse(description="The foundation's error shape: {status, error{code, …}}")


@extend_schema_view(
    list=extend_schema(summary="AI analysis runs of the studies you may see (filters)"),
    retrieve=extend_schema(summary="One analysis run with its findings (audited as a read)"),
)
class AnalysisRunViewSet(
    PermissionByAction, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    filterset_class = AnalysisRunFilter
    ordering_fields = ["created_at", "finished_at"]
    default_perm = selectors.VIEW_RUN
    action_perms = {"create": services.RUN_PERM}

    def get_queryset(self):
        return selectors.run_queryset(user=self.request.user)

    def get_serializer_class(self):
        return AnalysisRunSerializer if self.action == "list" else AnalysisRunDetailSerializer

    def list(self, request, *args, **kwargs):
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        audit_list(
            actor=Actor.from_request(request),
            object_type="diagnostics.analysisrun",
            query=dict(request.query_params.items()),
            patient_ids=sorted({run.audit_patient_id for run in page}),
        )
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def retrieve(self, request, *args, **kwargs):
        run = self.get_object()
        audit_view(actor=Actor.from_request(request), obj=run.instance.series.study)
        return Response(self.get_serializer(run).data)

    @extend_schema(
        summary="Request AI analysis of a study (every applicable active model, or one named)",
        request=RunRequestSerializer,
        responses={202: AnalysisRunSerializer(many=True), 400: ERROR, 404: ERROR},
    )
    def create(self, request, *args, **kwargs):
        payload = RunRequestSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        study = study_selectors.study_get(user=request.user, pk=payload.validated_data["study"])
        model = None
        if payload.validated_data.get("model"):
            model = model_resolve(payload.validated_data["model"])
            if model is None:
                raise exceptions.ValidationError({"model": [_("No such model.")]})
        runs = services.runs_request(
            actor=Actor.from_request(request), study=study, model=model, trigger="api"
        )
        return Response(
            AnalysisRunSerializer(runs, many=True, context={"request": request}).data,
            status=status.HTTP_202_ACCEPTED,
        )


@extend_schema_view(retrieve=extend_schema(summary="One AI finding (audited as a read)"))
class FindingViewSet(PermissionByAction, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = FindingSerializer
    default_perm = selectors.VIEW_RUN
    action_perms = {"feedback": services.FEEDBACK_PERM}

    def get_queryset(self):
        from accounts.permissions import restrict

        return restrict(
            Finding.objects.select_related("run__instance__series__study", "heatmap"),
            self.request.user,
            selectors.VIEW_RUN,
        )

    def retrieve(self, request, *args, **kwargs):
        finding = self.get_object()
        audit_view(actor=Actor.from_request(request), obj=finding.run.instance.series.study)
        return Response(self.get_serializer(finding).data)

    @extend_schema(
        summary="Agree or disagree with a finding (radiologists), with an optional comment",
        request=FeedbackSerializer,
        responses={200: FeedbackResultSerializer, 400: ERROR, 403: ERROR, 404: ERROR},
    )
    @action(detail=True, methods=["post"])
    def feedback(self, request, pk=None):
        finding = self.get_object()
        payload = FeedbackSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        feedback = services.feedback_give(
            actor=Actor.from_request(request),
            finding=finding,
            agrees=payload.validated_data["agrees"],
            comment=payload.validated_data.get("comment", ""),
        )
        return Response(
            {
                "finding": finding.pk,
                "agrees": feedback.agrees,
                "comment": feedback.comment,
                "updated_at": feedback.updated_at,
            }
        )


@extend_schema_view(
    list=extend_schema(
        summary="The registered AI models: state (available / unavailable / invalid), active, "
        "problem"
    ),
    retrieve=extend_schema(summary="One AI model"),
)
class AIModelViewSet(
    PermissionByAction, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    serializer_class = AIModelSerializer
    default_perm = selectors.VIEW_RUN
    ordering_fields = ["name", "version"]
    filterset_fields = ["name", "state", "active"]

    def get_queryset(self):
        return AIModel.objects.order_by("name", "-version")


class PredictView(APIView):
    """Synchronous prediction on one uploaded image; nothing is stored."""

    parser_classes = [MultiPartParser, FormParser]
    perm = "diagnostics.predict"

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if not can(request.user, self.perm):
            raise exceptions.PermissionDenied

    @extend_schema(
        summary="Predict on one image (DICOM, PNG or JPEG), synchronously",
        description=(
            "Runs `ml.predict()` of the model (the card's preprocessing, then its temperature, "
            "then its thresholds) and Grad-CAM for the regions. `diagnoses` lists every label. "
            "Without `model`, PREDICT_DEFAULT_MODEL is used and the image must fit the card's "
            "`applies_to` as far as the file tells (a DICOM header's category, view and "
            "patient age): a known mismatch is refused with 422 `not_applicable`; facts the "
            "file does not tell (a PNG has none) come back as warnings. A named `model` skips "
            "the check and reports every reason it might not apply in `metadata.warnings`. "
            "`severity` and `confidence_score` are defined on their fields below. Errors: 400 "
            "`invalid`/`invalid_image`/`unknown_model`, 409 `model_unavailable` (e.g. weights "
            "not installed), 422 `not_applicable`, 413 `too_large`. "
            "AI result — decision support, not a diagnosis."
        ),
        request={"multipart/form-data": PredictRequestSerializer},
        responses={200: PredictResponseSerializer, 400: ERROR, 409: ERROR, 422: ERROR},
    )
    def post(self, request):
        from django.conf import settings

        from diagnostics.predicting import PredictError, predict_image

        payload = PredictRequestSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        upload = payload.validated_data["image"]
        if upload.size > settings.PREDICT_MAX_BYTES:
            return Response(
                error_body(
                    "too_large",
                    _("The image is larger than %(n)d MB.")
                    % {"n": settings.PREDICT_MAX_BYTES // (1024 * 1024)},
                ),
                status=413,
            )
        data = upload.read()
        try:
            body = predict_image(data=data, model_spec=payload.validated_data.get("model", ""))
        except PredictError as exc:
            return Response(error_body(exc.code, exc.message, exc.details), status=exc.status)
        # Who ran which model on which image (by hash: the image itself is not kept).
        audit_record(
            actor=Actor.from_request(request),
            action="predict",
            object_type="diagnostics.aimodel",
            object_id=f"{body['metadata']['model']}@{body['metadata']['model_version']}",
            details={"image_sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)},
        )
        return Response(body)


@extend_schema(exclude=True)  # the same endpoint as /api/v1/predict, documented once
class PredictSlashView(PredictView):
    pass

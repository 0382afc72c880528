"""API of reading and reporting: ``/api/v1/reports/`` (list, filter, search, draft create and
update, sign, amend, pdf), ``/api/v1/worklist/`` (department and ``mine``) and claim/release
on ``/api/v1/studies/{id}/``. Same services, selectors, filters, scope and audit as the pages."""

from __future__ import annotations

from contextlib import contextmanager

from django.http import Http404
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, renderers, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.audit import Actor, audit_list, audit_view
from accounts.idempotency import idempotent
from accounts.permissions import PermissionByAction
from studies import selectors as study_selectors
from studies.api.serializers import StudySerializer
from studies.api.views import PNGRenderer
from studies.filters import StudyFilter
from studies.models import Report, ReportTemplate, Study
from studies.reporting import selectors, services
from studies.reporting.filters import ReportFilter, WorklistFilter
from studies.reporting.search import highlighted, report_search


class ClaimConflictError(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "claimed"
    default_detail = _("This study is being read by another radiologist.")


@contextmanager
def _claim_conflict_as_409():
    try:
        yield
    except services.ClaimConflict as exc:
        raise ClaimConflictError(exc.messages[0]) from None


class PDFRenderer(PNGRenderer):
    media_type = "application/pdf"
    format = "pdf"


class ReportSerializer(serializers.ModelSerializer):
    patient = serializers.IntegerField(source="study.patient_id", read_only=True)
    author = serializers.CharField(source="author.display_name", read_only=True)
    finding_codes = serializers.SlugRelatedField(slug_field="code", many=True, read_only=True)
    amends = serializers.IntegerField(source="amends_id", read_only=True, allow_null=True)

    class Meta:
        model = Report
        fields = [
            "id",
            "study",
            "patient",
            "version",
            "status",
            "preliminary",
            "conclusion",
            "finding_codes",
            "amends",
            "amendment_reason",
            "author",
            "created_at",
            "updated_at",
            "signed_at",
        ]
        read_only_fields = fields


class ReportSearchSerializer(ReportSerializer):
    highlight = serializers.SerializerMethodField(
        help_text=_("The matching part of the conclusion, matches in <mark> (HTML-escaped).")
    )

    class Meta(ReportSerializer.Meta):
        fields = [*ReportSerializer.Meta.fields, "highlight"]
        read_only_fields = fields

    def get_highlight(self, report) -> str:
        return str(highlighted(report, self.context.get("text", "")))


class DraftCreateSerializer(serializers.Serializer):
    study = serializers.IntegerField()
    conclusion = serializers.CharField(required=False, allow_blank=True, max_length=20000)
    finding_codes = serializers.ListField(
        child=serializers.SlugField(max_length=64), required=False
    )
    template = serializers.PrimaryKeyRelatedField(
        queryset=ReportTemplate.objects.filter(active=True), required=False, allow_null=True
    )

    def validate_study(self, value):
        try:
            return study_selectors.study_get(user=self.context["request"].user, pk=value)
        except Http404:
            raise serializers.ValidationError(_("No such study.")) from None


class DraftUpdateSerializer(serializers.Serializer):
    conclusion = serializers.CharField(required=False, allow_blank=True, max_length=20000)
    finding_codes = serializers.ListField(
        child=serializers.SlugField(max_length=64), required=False
    )


class SignSerializer(serializers.Serializer):
    preliminary = serializers.BooleanField(default=False)


class AmendSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000)


class WorklistStudySerializer(StudySerializer):
    reading_status = serializers.CharField(read_only=True)
    ai_priority = serializers.IntegerField(read_only=True)
    claimed_by = serializers.CharField(
        source="claimed_by.display_name", read_only=True, allow_null=True, default=None
    )
    claimed_at = serializers.DateTimeField(read_only=True, allow_null=True)

    class Meta(StudySerializer.Meta):
        fields = [
            *StudySerializer.Meta.fields,
            "reading_status",
            "ai_priority",
            "claimed_by",
            "claimed_at",
        ]
        read_only_fields = fields


@extend_schema_view(
    list=extend_schema(
        summary="List and search reports (text, finding codes, status and every study filter)",
        parameters=[
            OpenApiParameter("text", str, description="Full-text search in the conclusion."),
            *[
                OpenApiParameter(name, str, description=str(f.label or name))
                for name, f in StudyFilter.base_filters.items()
                if name != "ordering"
            ],
        ],
    ),
    retrieve=extend_schema(summary="One report version (audited read)"),
    create=extend_schema(summary="Start a study's first report as a draft (claims the study)"),
    partial_update=extend_schema(summary="Save a draft (its author only)"),
)
class ReportViewSet(
    PermissionByAction,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    filterset_class = ReportFilter
    ordering_fields = ["signed_at", "created_at", "version"]
    http_method_names = ["get", "post", "patch", "head", "options"]
    default_perm = services.VIEW_PERM
    action_perms = {
        "create": services.WRITE_PERM,
        "partial_update": services.CHANGE_PERM,
        "sign": services.SIGN_PERM,
        "amend": services.WRITE_PERM,
    }

    def get_queryset(self):
        qs = selectors.report_queryset(user=self.request.user)
        if self.action == "list":
            qs = qs.order_by("-signed_at", "-id")
        return qs

    def get_serializer_class(self):
        return ReportSearchSerializer if self.action == "list" else ReportSerializer

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        if self.action == "list":
            queryset = report_search(queryset, self.request.query_params.get("text", ""))
        return queryset

    def get_serializer_context(self):
        return {
            **super().get_serializer_context(),
            "text": self.request.query_params.get("text", ""),
        }

    def list(self, request, *args, **kwargs):
        response = super().list(request, *args, **kwargs)
        rows = response.data.get("results", [])
        audit_list(
            actor=Actor.from_request(request),
            object_type="studies.report",
            query=dict(request.query_params.items()),
            patient_ids=sorted({row["patient"] for row in rows}),
            report_ids=[row["id"] for row in rows],
        )
        return response

    def retrieve(self, request, *args, **kwargs):
        report = self.get_object()
        audit_view(
            actor=Actor.from_request(request), obj=report, details={"version": report.version}
        )
        return Response(ReportSerializer(report).data)

    @extend_schema(request=DraftCreateSerializer, responses={201: ReportSerializer})
    def create(self, request, *args, **kwargs):
        payload = DraftCreateSerializer(data=request.data, context={"request": request})
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        with _claim_conflict_as_409():
            report = services.report_draft_create(
                actor=Actor.from_request(request),
                study=data["study"],
                conclusion=data.get("conclusion", ""),
                finding_codes=data.get("finding_codes", []),
                template=data.get("template"),
            )
        return Response(ReportSerializer(report).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=DraftUpdateSerializer, responses={200: ReportSerializer})
    def partial_update(self, request, *args, **kwargs):
        report = self.get_object()
        payload = DraftUpdateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        report = services.report_draft_update(
            actor=Actor.from_request(request),
            report=report,
            conclusion=payload.validated_data.get("conclusion"),
            finding_codes=payload.validated_data.get("finding_codes"),
        )
        return Response(ReportSerializer(report).data)

    @extend_schema(
        summary="Sign a draft (its author): it becomes immutable",
        request=SignSerializer,
        responses={200: ReportSerializer},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def sign(self, request, pk=None):
        report = self.get_object()
        payload = SignSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        with _claim_conflict_as_409():
            report = services.report_sign(
                actor=Actor.from_request(request),
                report=report,
                preliminary=payload.validated_data["preliminary"],
            )
        return Response(ReportSerializer(report).data)

    @extend_schema(
        summary="Amend a signed report: a new draft version; the signed one stays readable",
        request=AmendSerializer,
        responses={201: ReportSerializer},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def amend(self, request, pk=None):
        report = self.get_object()
        payload = AmendSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        draft = services.report_amend(
            actor=Actor.from_request(request),
            report=report,
            reason=payload.validated_data["reason"],
        )
        return Response(ReportSerializer(draft).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="The signed report as a PDF (audited as a print)",
        responses={(200, "application/pdf"): OpenApiTypes.BINARY},
    )
    @action(detail=True, methods=["get"], renderer_classes=[renderers.JSONRenderer, PDFRenderer])
    def pdf(self, request, pk=None):
        from studies.reporting.views import pdf_response

        report = self.get_object()
        if not report.is_signed:
            raise exceptions.PermissionDenied(_("Only a signed report is printed."))
        return pdf_response(request, report)


@extend_schema_view(
    list=extend_schema(
        summary="The department worklist: open studies by urgency, AI priority, age"
    ),
)
class WorklistViewSet(PermissionByAction, mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = WorklistStudySerializer
    filterset_class = WorklistFilter
    ordering_fields = ["study_datetime", "created_at", "ai_priority"]
    default_perm = study_selectors.VIEW
    action_perms = {"mine": services.CLAIM_PERM}

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator's fake request
            return Study.objects.none()
        return selectors.worklist(user=self.request.user, mine=self.action == "mine")

    def list(self, request, *args, **kwargs):
        response = super().list(request, *args, **kwargs)
        audit_list(
            actor=Actor.from_request(request),
            object_type="studies.study",
            query=dict(request.query_params.items()),
            patient_ids=sorted({row["patient"] for row in response.data.get("results", [])}),
            worklist="mine" if self.action == "mine" else "department",
        )
        return response

    @extend_schema(
        summary="My worklist: the studies I hold",
        filters=True,
        responses=WorklistStudySerializer(many=True),
    )
    @action(detail=False, methods=["get"])
    def mine(self, request):
        return self.list(request)


class StudyClaimViewSet(PermissionByAction, viewsets.GenericViewSet):
    """``POST /api/v1/studies/{id}/claim/`` and ``…/release/`` (routed in ``api_urls``)."""

    serializer_class = WorklistStudySerializer
    action_perms = {"claim": services.CLAIM_PERM, "release": study_selectors.VIEW}

    def get_queryset(self):
        return study_selectors.study_queryset(user=self.request.user).select_related("claimed_by")

    def _body(self, study):
        return WorklistStudySerializer(self.get_queryset().get(pk=study.pk)).data

    @extend_schema(
        summary="Claim a study for reading (409 when another radiologist holds it)",
        request=None,
        responses={200: WorklistStudySerializer},
    )
    def claim(self, request, pk=None):
        study = self.get_object()
        with _claim_conflict_as_409():
            services.study_claim(actor=Actor.from_request(request), study=study)
        return Response(self._body(study))

    @extend_schema(
        summary="Release a claim (the holder, or an administrator)",
        request=None,
        responses={200: WorklistStudySerializer},
    )
    def release(self, request, pk=None):
        study = self.get_object()
        services.study_release(actor=Actor.from_request(request), study=study)
        return Response(self._body(study))

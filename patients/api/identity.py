"""/api/v1/patients/{id}/merge/, /merge-preview/, /unmerge/, /history/, /identify/ and the
possible-duplicates queue at /api/v1/patient-duplicates/."""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import filters, mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.audit import VIEW, Actor, audit_list, audit_record
from accounts.idempotency import idempotent
from accounts.permissions import PermissionByAction
from patients import duplicates, merge, selectors, services
from patients.api.serializers import PatientSerializer, ReasonSerializer
from patients.models import MERGE_FIELDS, DuplicateCandidate, PatientHistory, PatientMerge


class MergeRequestSerializer(serializers.Serializer):
    duplicate = serializers.IntegerField(help_text=_("Id of the record merged into this one."))
    reason = serializers.CharField(max_length=1000)
    choices = serializers.DictField(
        child=serializers.ChoiceField(choices=[merge.SURVIVOR, merge.DUPLICATE]),
        required=False,
        default=dict,
        help_text=_(
            'Per field, whose value the merged record keeps: "survivor" or "duplicate". '
            "Fields left out keep the survivor's value unless it is empty."
        ),
    )

    def validate_choices(self, value):
        unknown = sorted(set(value) - set(MERGE_FIELDS))
        if unknown:
            raise serializers.ValidationError(
                _("Not mergeable fields: %(fields)s.") % {"fields": ", ".join(unknown)}
            )
        return value


class UnmergeRequestSerializer(serializers.Serializer):
    merge = serializers.IntegerField(help_text=_("Id of the merge to undo."))
    reason = serializers.CharField(max_length=1000)


class MergeSerializer(serializers.ModelSerializer):
    duplicate_mrn = serializers.CharField(source="duplicate.mrn", read_only=True)
    is_active = serializers.BooleanField(read_only=True)

    class Meta:
        model = PatientMerge
        fields = [
            "id",
            "survivor",
            "duplicate",
            "duplicate_mrn",
            "merged_at",
            "merged_by_name",
            "reason",
            "choices",
            "survivor_before",
            "survivor_after",
            "moved",
            "is_active",
            "unmerged_at",
            "unmerged_by_name",
            "unmerge_reason",
            "unmerge_report",
        ]


class HistorySerializer(serializers.ModelSerializer):
    class Meta:
        model = PatientHistory
        fields = ["id", "time", "username", "event", "field", "before", "after", "reason", "merge"]


class PatientRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    mrn = serializers.CharField()
    full_name = serializers.CharField()
    birth_date = serializers.DateField()
    identity_status = serializers.CharField()


class DuplicateCandidateSerializer(serializers.ModelSerializer):
    patient_a = PatientRefSerializer(read_only=True)
    patient_b = PatientRefSerializer(read_only=True)
    suggested_survivor = serializers.IntegerField(source="suggested_survivor.pk", read_only=True)

    class Meta:
        model = DuplicateCandidate
        fields = [
            "id",
            "patient_a",
            "patient_b",
            "score",
            "name_score",
            "reasons",
            "status",
            "found_at",
            "suggested_survivor",
        ]


class IdentifyRequestSerializer(PatientSerializer):
    reason = serializers.CharField(max_length=1000, required=False, allow_blank=True)

    class Meta(PatientSerializer.Meta):
        fields = [f for f in PatientSerializer.Meta.fields if f != "confirm_duplicate"] + ["reason"]


class PatientIdentityViewSet(PermissionByAction, viewsets.GenericViewSet):
    """Identity actions on one patient; the patient is looked up in the user's scope (404)."""

    serializer_class = MergeSerializer
    default_perm = "patients.view_patient"
    action_perms = {
        "merge": merge.MERGE_PERM,
        "merge_preview": merge.MERGE_PERM,
        "unmerge": merge.MERGE_PERM,
        "history": "patients.view_patient",
        "identify": "patients.change_patient",
    }

    def get_queryset(self):
        include_deleted = self.action == "history"
        return selectors.patient_queryset(
            user=self.request.user, perm=self.required_perm(), include_deleted=include_deleted
        )

    def _duplicate(self, pk):
        qs = selectors.patient_queryset(
            user=self.request.user, perm=merge.MERGE_PERM, include_merged=True
        )
        duplicate = qs.filter(pk=pk).first()
        if duplicate is None:
            raise serializers.ValidationError(
                {"duplicate": [_("No such patient that you may merge.")]}
            )
        return duplicate

    @extend_schema(
        summary="Preview a merge: rows that would move and default field winners",
        parameters=[OpenApiParameter("duplicate", int, required=True)],
        responses={200: dict},
    )
    @action(detail=True, methods=["get"], url_path="merge-preview")
    def merge_preview(self, request, pk=None):
        survivor = self.get_object()
        raw = request.query_params.get("duplicate", "")
        if not raw.isdigit():
            raise serializers.ValidationError({"duplicate": [_("Give the duplicate's id.")]})
        preview = merge.merge_preview(survivor=survivor, duplicate=self._duplicate(int(raw)))
        return Response(
            {
                "survivor": survivor.pk,
                "duplicate": preview.duplicate.pk,
                "fields": [
                    {
                        "field": name,
                        "label": label,
                        "survivor": PatientSerializer().fields[name].to_representation(s)
                        if s is not None
                        else None,
                        "duplicate": PatientSerializer().fields[name].to_representation(d)
                        if d is not None
                        else None,
                        "default": default,
                    }
                    for name, label, s, d, default in preview.fields
                ],
                "moves": [{"model": name, "count": count} for name, count in preview.moves],
            }
        )

    @extend_schema(
        summary="Merge a duplicate into this patient",
        request=MergeRequestSerializer,
        examples=[
            OpenApiExample(
                "Merge, keeping the duplicate's phone",
                request_only=True,
                value={
                    "duplicate": 118,
                    "reason": "Registered twice at admission",
                    "choices": {"phone": "duplicate"},
                },
            )
        ],
        responses={200: MergeSerializer},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def merge(self, request, pk=None):
        survivor = self.get_object()
        body = MergeRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        done = merge.patient_merge(
            actor=Actor.from_request(request),
            survivor=survivor,
            duplicate=self._duplicate(body.validated_data["duplicate"]),
            reason=body.validated_data["reason"],
            choices=body.validated_data["choices"],
        )
        return Response(MergeSerializer(done).data)

    @extend_schema(
        summary="Undo a merge into this patient",
        request=UnmergeRequestSerializer,
        responses={200: MergeSerializer},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def unmerge(self, request, pk=None):
        survivor = self.get_object()
        body = UnmergeRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        record = selectors.merge_get(
            user=request.user, patient=survivor, pk=body.validated_data["merge"]
        )
        done = merge.patient_unmerge(
            actor=Actor.from_request(request), merge=record, reason=body.validated_data["reason"]
        )
        return Response(MergeSerializer(done).data)

    @extend_schema(summary="Identity history and merges of a patient", responses={200: dict})
    @action(detail=True, methods=["get"])
    def history(self, request, pk=None):
        patient = self.get_object()
        audit_record(
            actor=Actor.from_request(request), action=VIEW, obj=patient, details={"history": True}
        )
        return Response(
            {
                "history": HistorySerializer(
                    selectors.patient_history(patient=patient)[:500], many=True
                ).data,
                "merges": MergeSerializer(
                    selectors.patient_merges(patient=patient), many=True
                ).data,
            }
        )

    @extend_schema(
        summary="Identify an unknown or provisional patient (the record becomes verified)",
        request=IdentifyRequestSerializer,
        responses={200: PatientSerializer},
    )
    @action(detail=True, methods=["post"])
    def identify(self, request, pk=None):
        patient = self.get_object()
        body = IdentifyRequestSerializer(instance=patient, data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        reason = data.pop("reason", "")
        identifiers = data.pop("identifiers", None)
        patient = services.patient_identify(
            actor=Actor.from_request(request),
            patient=patient,
            data=data,
            identifiers=[
                services.IdentifierInput(type=i["type"], value=i["value"]) for i in identifiers
            ]
            if identifiers is not None
            else None,
            reason=reason,
        )
        return Response(PatientSerializer(patient).data)


class DuplicateCandidateViewSet(PermissionByAction, mixins.ListModelMixin, viewsets.GenericViewSet):
    default_perm = merge.MERGE_PERM
    """The open possible-duplicates queue (registrars and administrators)."""

    serializer_class = DuplicateCandidateSerializer
    filter_backends = [filters.OrderingFilter]
    ordering_fields = ["score", "found_at"]
    ordering = ["-score", "id"]

    def get_queryset(self):
        return selectors.duplicate_queue(user=self.request.user)

    @extend_schema(summary="Open possible duplicates, best score first")
    def list(self, request, *args, **kwargs):
        response = super().list(request, *args, **kwargs)
        ids = []
        for row in response.data.get("results", []):
            ids += [row["patient_a"]["id"], row["patient_b"]["id"]]
        audit_list(
            actor=Actor.from_request(request),
            object_type="patients.duplicatecandidate",
            query=dict(request.query_params.items()),
            patient_ids=ids,
        )
        return response

    @extend_schema(
        summary="Dismiss a pair: different people, never suggested again",
        request=ReasonSerializer,
        responses={204: None},
    )
    @action(detail=True, methods=["post"])
    def dismiss(self, request, pk=None):
        pair = self.get_object()
        duplicates.duplicate_dismiss(
            actor=Actor.from_request(request),
            candidate=pair,
            reason=str(request.data.get("reason", "")),
        )
        return Response(status=204)

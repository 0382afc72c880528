from django.db.models import prefetch_related_objects
from django.http import Http404
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.audit import Actor, audit_list, audit_view
from accounts.idempotency import idempotent
from accounts.permissions import PermissionByAction
from patients import selectors, services
from patients.api.serializers import PatientSerializer, ReasonSerializer
from patients.filters import PatientFilter


class PossibleDuplicate(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "possible_duplicate"
    default_detail = _(
        "A patient with the same name and birth date is already registered; "
        'send "confirm_duplicate": true to register a different person.'
    )

    def __init__(self, detail):
        super().__init__(self.default_detail, self.default_code)
        self.extra = detail


def _identifier_inputs(items) -> list[services.IdentifierInput]:
    return [services.IdentifierInput(type=i["type"], value=i["value"]) for i in items]


@extend_schema_view(
    list=extend_schema(summary="List and search patients"),
    retrieve=extend_schema(summary="One patient"),
    create=extend_schema(
        summary="Register a patient",
        examples=[
            OpenApiExample(
                "A new patient",
                request_only=True,
                value={
                    "last_name": "Ёлкина",
                    "first_name": "Мария",
                    "birth_date": "1990-01-02",
                    "sex": "F",
                    "identifiers": [{"type": "snils", "value": "112-233-445 95"}],
                },
            )
        ],
    ),
    partial_update=extend_schema(summary="Change a patient's fields"),
    update=extend_schema(summary="Replace a patient's fields"),
    destroy=extend_schema(
        summary="Soft-delete a patient (kept; an administrator restores)",
        request=ReasonSerializer,
        responses={204: OpenApiResponse(description="Deleted")},
    ),
)
class PatientViewSet(
    PermissionByAction,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = PatientSerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = PatientFilter

    default_perm = "patients.view_patient"
    action_perms = {
        "create": "patients.add_patient",
        "update": "patients.change_patient",
        "partial_update": "patients.change_patient",
        "destroy": "patients.delete_patient",
        "restore": "patients.restore_patient",
    }

    # The list counts its rows part by part and reads a page by its keys (mis.api): the same
    # number and rows as the queryset's own count and slice, with less work for the database.
    def paginated_count(self, queryset) -> int:
        return selectors.patient_count(user=self.request.user, data=self.request.query_params)

    def filter_queryset(self, queryset):
        if not any(name in self.request.query_params for name in PatientFilter.base_filters):
            return queryset  # no filter asked for: the FilterSet would hand it back unchanged
        return super().filter_queryset(queryset)

    def page_rows(self, queryset, page_slice):
        return selectors.patient_page(queryset=queryset, page_slice=page_slice)

    def get_queryset(self):
        user = self.request.user
        include_deleted = self.action == "restore" or selectors.wants_deleted(
            self.request.query_params
        )
        queryset = selectors.patient_queryset(user=user, include_deleted=include_deleted)
        if self.action == "retrieve":
            # The patient alone: ``retrieve`` sends its viewing-window event (audit_view) and
            # then reads the identifiers, so that the event's commit overlaps that round trip.
            return queryset
        return queryset.prefetch_related("identifiers__type")

    def list(self, request, *args, **kwargs):
        # ListModelMixin.list with the audit event sent as soon as the page's rows are known:
        # its commit overlaps their serialization.
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        rows = page if page is not None else list(queryset)
        audit_list(
            actor=Actor.from_request(request),
            object_type="patients.patient",
            query=dict(request.query_params.items()),
            patient_ids=[patient.pk for patient in rows],
        )
        data = self.get_serializer(rows, many=True).data
        return self.get_paginated_response(data) if page is not None else Response(data)

    def retrieve(self, request, *args, **kwargs):
        try:
            patient = self.get_object()
        except Http404:
            # A merged record's old URL answers with the survivor's (when the user may see it).
            survivor = selectors.patient_merged_survivor(user=request.user, pk=kwargs.get("pk"))
            if survivor is None:
                raise
            url = reverse("patient-detail", args=[survivor.pk])
            return Response(
                {"id": int(kwargs["pk"]), "merged_into": survivor.pk},
                status=status.HTTP_302_FOUND,
                headers={"Location": url},
            )
        audit_view(actor=Actor.from_request(request), obj=patient)
        prefetch_related_objects([patient], "identifiers__type")
        return Response(self.get_serializer(patient).data)

    @idempotent
    def create(self, request, *args, **kwargs):
        return super().create(request, *args, **kwargs)

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        if not data.pop("confirm_duplicate", False):
            duplicates = selectors.patient_possible_duplicates(
                user=self.request.user,
                last_name=data.get("last_name", ""),
                first_name=data.get("first_name", ""),
                birth_date=data.get("birth_date"),
            )
            if duplicates:
                audit_list(  # the 409 names these patients: a read like a list
                    actor=Actor.from_request(self.request),
                    object_type="patients.patient",
                    query={"possible_duplicates_of": data.get("last_name", "")},
                    patient_ids=[p.pk for p in duplicates],
                )
                raise PossibleDuplicate(
                    detail={
                        "candidates": [
                            {"id": p.pk, "mrn": p.mrn, "full_name": p.full_name} for p in duplicates
                        ]
                    }
                )
        identifiers = _identifier_inputs(data.pop("identifiers", []))
        serializer.instance = services.patient_register(
            actor=Actor.from_request(self.request), data=data, identifiers=identifiers
        )

    def perform_update(self, serializer):
        data = dict(serializer.validated_data)
        data.pop("confirm_duplicate", None)
        identifiers = data.pop("identifiers", None)
        serializer.instance = services.patient_update(
            actor=Actor.from_request(self.request),
            patient=serializer.instance,
            data=data,
            identifiers=_identifier_inputs(identifiers) if identifiers is not None else None,
        )

    def destroy(self, request, *args, **kwargs):
        patient = self.get_object()
        reason = ReasonSerializer(data=request.data)
        reason.is_valid(raise_exception=True)
        services.patient_soft_delete(
            actor=Actor.from_request(request),
            patient=patient,
            reason=reason.validated_data["reason"],
        )
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(summary="Restore a soft-deleted patient", request=None)
    @action(detail=True, methods=["post"])
    def restore(self, request, pk=None):
        patient = self.get_object()
        patient = services.patient_restore(actor=Actor.from_request(request), patient=patient)
        return Response(self.get_serializer(patient).data)

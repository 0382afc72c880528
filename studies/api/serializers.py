from django.http import Http404
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from accounts.models import Department
from mis.api import CachedFieldsMixin
from patients.selectors import patient_get
from studies import selectors
from studies.models import Category, Instance, Series, Study, Urgency
from studies.services import STUDY_EDITABLE_FIELDS


class InstanceSerializer(CachedFieldsMixin, serializers.ModelSerializer):
    is_image = serializers.BooleanField(read_only=True)
    has_file = serializers.SerializerMethodField()

    class Meta:
        model = Instance
        fields = [
            "id",
            "sop_instance_uid",
            "sop_class_uid",
            "sop_class_name",
            "number",
            "is_image",
            "document_kind",
            "rows",
            "columns",
            "frames",
            "transfer_syntax",
            "source_format",
            "size",
            "sha256",
            "has_file",
            "created_at",
        ]

    def get_has_file(self, instance) -> bool:
        return bool(instance.file)


class InstanceDetailSerializer(InstanceSerializer):
    series = serializers.IntegerField(source="series_id", read_only=True)
    study = serializers.IntegerField(source="series.study_id", read_only=True)

    class Meta(InstanceSerializer.Meta):
        fields = [*InstanceSerializer.Meta.fields, "series", "study"]


class SeriesSerializer(CachedFieldsMixin, serializers.ModelSerializer):
    instances = InstanceSerializer(many=True, read_only=True)

    class Meta:
        model = Series
        fields = ["id", "series_uid", "modality", "number", "description", "body_part", "instances"]


class SeriesDetailSerializer(SeriesSerializer):
    study = serializers.IntegerField(source="study_id", read_only=True)

    class Meta(SeriesSerializer.Meta):
        fields = [*SeriesSerializer.Meta.fields, "study"]


class StudySerializer(CachedFieldsMixin, serializers.ModelSerializer):
    department = serializers.SlugRelatedField(slug_field="code", read_only=True)
    patient_name = serializers.CharField(source="patient.full_name", read_only=True)
    patient_mrn = serializers.CharField(source="patient.mrn", read_only=True)
    instance_count = serializers.IntegerField(read_only=True, required=False)

    class Meta:
        model = Study
        fields = [
            "id",
            "study_uid",
            "patient",
            "patient_name",
            "patient_mrn",
            "department",
            "accession_number",
            "study_datetime",
            "description",
            "modalities",
            "category",
            "body_part",
            "view_position",
            "institution",
            "referring_physician",
            "clinical_question",
            "urgency",
            "warnings",
            "instance_count",
            "images_removed_at",
            "images_removed_reason",
            "created_at",
        ]
        read_only_fields = [f for f in fields if f not in STUDY_EDITABLE_FIELDS]


class StudyDetailSerializer(StudySerializer):
    series = serializers.SerializerMethodField()

    class Meta(StudySerializer.Meta):
        fields = [*StudySerializer.Meta.fields, "series"]

    def get_series(self, study) -> list[dict]:  # type: ignore[override]
        return SeriesSerializer(selectors.study_series(study=study), many=True).data


class UploadSerializer(serializers.Serializer):
    file = serializers.ListField(
        child=serializers.FileField(allow_empty_file=True, use_url=False),
        allow_empty=False,
        help_text=_("One or more files (repeat the field): DICOM, PNG, JPEG or a ZIP of them."),
    )
    patient = serializers.IntegerField(
        required=False, help_text=_("Patient id; required for PNG/JPEG without a study.")
    )
    study = serializers.IntegerField(
        required=False, help_text=_("An existing study (id) to add PNG/JPEG images to.")
    )
    department = serializers.SlugRelatedField(
        slug_field="code",
        queryset=Department.objects.filter(is_active=True),
        required=False,
        help_text=_("Performing department code; defaults to the uploader's only department."),
    )
    category = serializers.ChoiceField(choices=Category.choices, required=False, allow_blank=True)
    body_part = serializers.CharField(max_length=64, required=False, allow_blank=True)
    view_position = serializers.CharField(max_length=16, required=False, allow_blank=True)
    clinical_question = serializers.CharField(max_length=4000, required=False, allow_blank=True)
    urgency = serializers.ChoiceField(choices=Urgency.choices, required=False, allow_blank=True)

    def _user(self):
        return self.context["request"].user

    def validate_patient(self, value):
        try:
            return patient_get(user=self._user(), pk=value)
        except Http404:
            raise serializers.ValidationError(_("No such patient.")) from None

    def validate_study(self, value):
        try:
            return selectors.study_get(user=self._user(), pk=value)
        except Http404:
            raise serializers.ValidationError(_("No such study.")) from None

    def validate_department(self, value):
        if value not in selectors.upload_departments(user=self._user()):
            raise serializers.ValidationError(_("You may not upload for this department."))
        return value


class IngestResultSerializer(serializers.Serializer):
    name = serializers.CharField()
    status = serializers.ChoiceField(choices=["imported", "duplicate", "rejected"])
    message = serializers.CharField()
    study = serializers.IntegerField(allow_null=True)
    instance = serializers.IntegerField(allow_null=True)
    patient = serializers.IntegerField(allow_null=True)
    warnings = serializers.ListField(child=serializers.CharField())


class UploadResultSerializer(serializers.Serializer):
    results = IngestResultSerializer(many=True)
    counts = serializers.DictField(child=serializers.IntegerField())


class RemoveImagesSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500, allow_blank=False, trim_whitespace=True)

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from diagnostics.models import AIModel, AnalysisRun, Finding


class FindingSerializer(serializers.ModelSerializer):
    heatmap = serializers.SerializerMethodField(help_text=_("URL of the heatmap PNG, if any."))
    heatmap_image = serializers.IntegerField(source="heatmap_id", read_only=True)
    regions = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField()),
        read_only=True,
        help_text=_("Bounding boxes [x1, y1, x2, y2] in original-image pixels."),
    )

    class Meta:
        model = Finding
        fields = [
            "id",
            "label",
            "code",
            "probability",
            "threshold",
            "positive",
            "severity",
            "regions",
            "heatmap",
            "heatmap_image",
        ]

    def get_heatmap(self, finding) -> str | None:
        if not finding.heatmap_id:
            return None
        from django.urls import reverse

        url = reverse("diagnostics:heatmap", args=[finding.pk])
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request else url


class AnalysisRunSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name", read_only=True)
    model_version = serializers.CharField(source="model.version", read_only=True)
    study = serializers.IntegerField(source="instance.series.study_id", read_only=True)
    positive = serializers.SerializerMethodField()

    class Meta:
        model = AnalysisRun
        fields = [
            "id",
            "study",
            "instance",
            "model",
            "model_version",
            "status",
            "reason",
            "error",
            "trigger",
            "attempts",
            "superseded_by",
            "created_at",
            "started_at",
            "finished_at",
            "inference_ms",
            "processing_ms",
            "positive",
        ]
        read_only_fields = fields

    def get_positive(self, run) -> list[str]:
        return [f.label for f in run.findings.all() if f.positive]


class AnalysisRunDetailSerializer(AnalysisRunSerializer):
    findings = FindingSerializer(many=True, read_only=True)
    disclaimer = serializers.SerializerMethodField()

    class Meta(AnalysisRunSerializer.Meta):
        fields = [*AnalysisRunSerializer.Meta.fields, "findings", "disclaimer"]

    def get_disclaimer(self, run) -> str:
        return str(_("AI result — decision support, not a diagnosis"))


class RunRequestSerializer(serializers.Serializer):
    study = serializers.IntegerField(help_text=_("The study whose images are analysed."))
    model = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text=_(
            "NAME or NAME@VERSION; empty: every active model that applies. A named model runs "
            "even where its card says it does not apply (the reason is kept on the run)."
        ),
    )


class FeedbackSerializer(serializers.Serializer):
    agrees = serializers.BooleanField(help_text=_("Whether you agree with the finding."))
    comment = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class FeedbackResultSerializer(serializers.Serializer):
    finding = serializers.IntegerField()
    agrees = serializers.BooleanField()
    comment = serializers.CharField()
    updated_at = serializers.DateTimeField()


class AIModelSerializer(serializers.ModelSerializer):
    class Meta:
        model = AIModel
        fields = ["id", "name", "version", "title", "state", "active", "problem", "labels"]


# -- POST /api/v1/predict --------------------------------------------------------------------
class PredictRequestSerializer(serializers.Serializer):
    image = serializers.FileField(help_text=_("DICOM, PNG or JPEG."))
    model = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text=_(
            "NAME or NAME@VERSION; default PREDICT_DEFAULT_MODEL. Naming a model skips the "
            "applicability check (the reasons it might not apply come back as warnings)."
        ),
    )


class DiagnosisSerializer(serializers.Serializer):
    condition = serializers.CharField(help_text=_("The model's label."))
    probability = serializers.FloatField(
        help_text=_("Calibrated probability (temperature-scaled), 0 to 1.")
    )
    positive = serializers.BooleanField(
        help_text=_("probability ≥ the threshold frozen in the model card.")
    )
    severity = serializers.ChoiceField(
        choices=["none", "low", "moderate", "high"],
        help_text=_(
            "'none' when negative. For a positive finding, from the calibrated probability and "
            "the model card's cut points (card 'severity': e.g. pneumonia moderate ≥ 0.75, high "
            "≥ 0.92): 'high' at or above the high cut point, 'moderate' at or above the "
            "moderate one, 'low' otherwise (just above the threshold)."
        ),
    )
    regions = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField(), min_length=4, max_length=4),
        help_text=_(
            "[x1, y1, x2, y2] boxes in original-image pixels around the Grad-CAM areas at or "
            "above half of the heatmap's peak; given for positive findings (or the most "
            "probable one when none is positive), empty otherwise."
        ),
    )


class PredictionSerializer(serializers.Serializer):
    diagnoses = DiagnosisSerializer(many=True, help_text=_("Every label of the model."))
    confidence_score = serializers.FloatField(
        help_text=_(
            "How decided the model is, 0.5 to 1: the mean over the model's labels of "
            "max(p, 1 − p), p being the calibrated probability. 1 means every label is "
            "certain one way or the other; 0.5 means a coin toss. It is not the accuracy."
        )
    )
    processing_time_ms = serializers.IntegerField(
        help_text=_("Reading, preprocessing, inference and Grad-CAM on the server.")
    )


class PredictMetadataSerializer(serializers.Serializer):
    model = serializers.CharField()
    model_version = serializers.CharField()
    timestamp = serializers.DateTimeField()
    warnings = serializers.ListField(child=serializers.CharField())
    disclaimer = serializers.CharField()


class PredictResponseSerializer(serializers.Serializer):
    status = serializers.CharField(help_text=_('Always "success" (errors use the error shape).'))
    prediction = PredictionSerializer()
    metadata = PredictMetadataSerializer()

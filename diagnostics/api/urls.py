from django.urls import path
from rest_framework.routers import DefaultRouter

from diagnostics.api.views import (
    AIModelViewSet,
    AnalysisRunViewSet,
    FindingViewSet,
    PredictSlashView,
    PredictView,
)

router = DefaultRouter()
router.register("analysis-runs", AnalysisRunViewSet, basename="analysisrun")
router.register("findings", FindingViewSet, basename="finding")
router.register("ai-models", AIModelViewSet, basename="aimodel")

urlpatterns = [
    path("predict", PredictView.as_view(), name="predict"),
    path("predict/", PredictSlashView.as_view(), name="predict-slash"),
    *router.urls,
]

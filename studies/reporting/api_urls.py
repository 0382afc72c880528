from django.urls import path
from rest_framework.routers import DefaultRouter

from studies.reporting.api import (
    ReportViewSet,
    StudyClaimView,
    StudyReleaseView,
    WorklistViewSet,
)

router = DefaultRouter()
router.include_root_view = False
router.register("reports", ReportViewSet, basename="report")
router.register("worklist", WorklistViewSet, basename="worklist")

urlpatterns = [
    path("studies/<int:pk>/claim/", StudyClaimView.as_view(), name="study-claim"),
    path("studies/<int:pk>/release/", StudyReleaseView.as_view(), name="study-release"),
    *router.urls,
]

from django.urls import path
from rest_framework.routers import DefaultRouter

from studies.reporting.api import ReportViewSet, StudyClaimViewSet, WorklistViewSet

router = DefaultRouter()
router.include_root_view = False
router.register("reports", ReportViewSet, basename="report")
router.register("worklist", WorklistViewSet, basename="worklist")

urlpatterns = [
    path(
        "studies/<int:pk>/claim/",
        StudyClaimViewSet.as_view({"post": "claim"}),
        name="study-claim",
    ),
    path(
        "studies/<int:pk>/release/",
        StudyClaimViewSet.as_view({"post": "release"}),
        name="study-release",
    ),
    *router.urls,
]

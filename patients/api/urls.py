from rest_framework.routers import DefaultRouter

from patients.api.identity import DuplicateCandidateViewSet, PatientIdentityViewSet
from patients.api.views import PatientViewSet

router = DefaultRouter()
router.register("patients", PatientViewSet, basename="patient")
router.register("patients", PatientIdentityViewSet, basename="patient-identity")
router.register("patient-duplicates", DuplicateCandidateViewSet, basename="patient-duplicate")

urlpatterns = router.urls

from rest_framework.routers import DefaultRouter

from studies.api.views import InstanceViewSet, SeriesViewSet, StudyViewSet

router = DefaultRouter()
router.register("studies", StudyViewSet, basename="study")
router.register("series", SeriesViewSet, basename="series")
router.register("instances", InstanceViewSet, basename="instance")

urlpatterns = router.urls

from django.urls import path
from rest_framework import renderers
from rest_framework.routers import DefaultRouter

from studies.api import viewer
from studies.api.views import InstanceViewSet, PNGRenderer, SeriesViewSet, StudyViewSet

router = DefaultRouter()
router.register("studies", StudyViewSet, basename="study")
router.register("series", SeriesViewSet, basename="series")
router.register("instances", InstanceViewSet, basename="instance")
router.register("annotations", viewer.AnnotationViewSet, basename="annotation")

# Image URLs end in ".png" (no trailing slash), so they are routed here, not by the router.
_png = {"renderer_classes": [renderers.JSONRenderer, PNGRenderer]}

urlpatterns = [
    path(
        "instances/<int:pk>/thumbnail.png",
        InstanceViewSet.as_view({"get": "thumbnail"}, **_png),
        name="instance-thumbnail",
    ),
    path(
        "instances/<int:pk>/frames/<int:frame>.png",
        InstanceViewSet.as_view({"get": "frame"}, **_png),
        name="instance-frame",
    ),
    *viewer.urlpatterns,
    *router.urls,
]

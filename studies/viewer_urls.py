from django.urls import path

from studies import viewer_views

urlpatterns = [
    path("<int:pk>/viewer/", viewer_views.viewer_page, name="viewer"),
    path("<int:pk>/compare/<int:other>/", viewer_views.compare_page, name="compare"),
]

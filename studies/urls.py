from django.urls import path

from studies import views

app_name = "studies"

urlpatterns = [
    path("", views.study_list, name="list"),
    path("upload/", views.upload, name="upload"),
    path("<int:pk>/", views.study_detail, name="detail"),
    path("instances/<int:pk>/file/", views.instance_file, name="instance-file"),
    path("instances/<int:pk>/thumbnail.png", views.instance_thumbnail, name="instance-thumbnail"),
]

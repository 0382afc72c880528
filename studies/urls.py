from django.urls import include, path

from studies import views

app_name = "studies"

urlpatterns = [
    path("", views.study_list, name="list"),
    path("upload/", views.upload, name="upload"),
    path("<int:pk>/", views.study_detail, name="detail"),
    path("<int:pk>/export.zip", views.study_export, name="export"),
    path("<int:pk>/remove-images/", views.study_remove_images, name="remove-images"),
    path("patient/<int:patient_id>/export.zip", views.patient_export, name="patient-export"),
    path("instances/<int:pk>/file/", views.instance_file, name="instance-file"),
    path("instances/<int:pk>/thumbnail.png", views.instance_thumbnail, name="instance-thumbnail"),
    path("", include("studies.viewer_urls")),
]

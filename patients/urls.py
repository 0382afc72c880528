from django.urls import path

from patients import emergency, views

app_name = "patients"

urlpatterns = [
    path("", views.patient_list, name="list"),
    path("new/", views.patient_create, name="create"),
    path("emergency/", emergency.emergency_access, name="emergency"),
    path("<int:pk>/", views.patient_detail, name="detail"),
    path("<int:pk>/edit/", views.patient_edit, name="edit"),
    path("<int:pk>/delete/", views.patient_delete, name="delete"),
    path("<int:pk>/restore/", views.patient_restore, name="restore"),
]

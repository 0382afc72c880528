from django.urls import path

from patients import emergency, views, views_identity

app_name = "patients"

urlpatterns = [
    path("", views.patient_list, name="list"),
    path("new/", views.patient_create, name="create"),
    path("emergency/", emergency.emergency_access, name="emergency"),
    path("reconciliation/", views_identity.reconciliation, name="reconciliation"),
    path("duplicates/", views_identity.duplicate_list, name="duplicates"),
    path(
        "duplicates/<int:pk>/dismiss/", views_identity.duplicate_dismiss, name="duplicate-dismiss"
    ),
    path("<int:pk>/", views.patient_detail, name="detail"),
    path("<int:pk>/edit/", views.patient_edit, name="edit"),
    path("<int:pk>/delete/", views.patient_delete, name="delete"),
    path("<int:pk>/restore/", views.patient_restore, name="restore"),
    path("<int:pk>/identify/", views_identity.patient_identify, name="identify"),
    path("<int:pk>/merge/", views_identity.patient_merge, name="merge"),
    path("<int:pk>/merge-into/", views_identity.patient_merge_into, name="merge-into"),
    path(
        "<int:pk>/merges/<int:merge_pk>/unmerge/",
        views_identity.patient_unmerge,
        name="unmerge",
    ),
]

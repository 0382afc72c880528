from django.urls import path

from accounts import hospital, views

app_name = "accounts"

urlpatterns = [
    path("audit/", views.audit_list, name="audit"),
    path("keepalive/", views.keepalive, name="keepalive"),
    path("hospital/", hospital.hospital_settings, name="hospital"),
    path("hospital/logo/", hospital.hospital_logo, name="hospital-logo"),
    path("tokens/", views.api_tokens, name="tokens"),
]

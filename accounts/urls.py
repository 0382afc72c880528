from django.urls import path

from accounts import views

app_name = "accounts"

urlpatterns = [
    path("audit/", views.audit_list, name="audit"),
    path("keepalive/", views.keepalive, name="keepalive"),
    path("tokens/", views.api_tokens, name="tokens"),
]

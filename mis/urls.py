from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from accounts.views import PasswordChangeView
from mis import health

api_v1 = [
    path("", include("patients.api.urls")),
    path("", include("studies.api.urls")),
    path("", include("accounts.api.urls")),
    path("", include("diagnostics.api.urls")),
    path("", include("studies.reporting.api_urls")),
]

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="patients:list", permanent=False), name="home"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password/", PasswordChangeView.as_view(), name="password_change"),
    path(
        "password/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path("accounts/", include("accounts.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("patients/", include("patients.urls")),
    path("studies/", include("studies.urls")),
    path("diagnostics/", include("diagnostics.urls")),
    path("reading/", include("studies.reporting.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
    path("health/", health.full, name="health"),
]

handler400 = "mis.errors.bad_request"
handler403 = "mis.errors.permission_denied"
handler404 = "mis.errors.page_not_found"
handler500 = "mis.errors.server_error"

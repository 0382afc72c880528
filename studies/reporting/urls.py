from django.urls import path

from studies.reporting import views

app_name = "reporting"

urlpatterns = [
    path("worklist/", views.worklist, name="worklist"),
    path("worklist/mine/", views.worklist, {"mine": True}, name="my-worklist"),
    path("turnaround/", views.turnaround, name="turnaround"),
    path("search/", views.report_search_page, name="search"),
    path("studies/<int:pk>/claim/", views.claim, name="claim"),
    path("studies/<int:pk>/release/", views.release, name="release"),
    path("studies/<int:pk>/report/", views.report_start, name="start"),
    path("reports/<int:pk>/", views.report_detail, name="report"),
    path("reports/<int:pk>/amend/", views.report_amend, name="amend"),
    path("reports/<int:pk>/print/", views.report_print, name="print"),
    path("reports/<int:pk>/report.pdf", views.report_pdf, name="pdf"),
]

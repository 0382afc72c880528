from django.urls import path

from diagnostics import views

app_name = "diagnostics"

urlpatterns = [
    path("studies/<int:pk>/ai/", views.study_ai, name="study-ai"),
    path("studies/<int:pk>/ai/run/", views.study_run, name="study-run"),
    path("findings/<int:pk>/feedback/", views.finding_feedback, name="feedback"),
    path("findings/<int:pk>/heatmap.png", views.heatmap, name="heatmap"),
]

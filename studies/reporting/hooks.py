"""Wiring of the reporting part, called once from ``StudiesConfig.ready``: its permissions in
the role table and the guard that keeps the finding codes of a signed report as they were."""

from __future__ import annotations


def ready() -> None:
    from django.db.models.signals import m2m_changed

    from accounts import roles
    from studies.models import Report

    roles.extend(
        roles.RADIOLOGIST,
        "studies.view_report",
        "studies.add_report",
        "studies.change_report",
        "studies.sign_report",
        "studies.claim_study",
        "studies.view_turnaround",
        "studies.view_reporttemplate",
    )
    # Clinicians read the signed reports of the studies they may see (selectors keep drafts out).
    roles.extend(roles.CLINICIAN, "studies.view_report")
    # Administrators: templates, releasing a claim
    # left behind, turnaround figures, and the read-only report admin of their departments.
    roles.extend(
        roles.ADMINISTRATOR,
        "studies.view_report",
        "studies.release_any_claim",
        "studies.view_turnaround",
        "studies.view_reporttemplate",
        "studies.add_reporttemplate",
        "studies.change_reporttemplate",
    )
    # Registrars never see report text; researchers see nothing of it.
    m2m_changed.connect(
        _refuse_signed_codes_change,
        sender=Report.finding_codes.through,
        dispatch_uid="report_signed_codes_guard",
    )


def _refuse_signed_codes_change(sender, instance, action, reverse, pk_set, **kwargs):
    from studies.models import Report, SignedReportError

    if not action.startswith("pre_"):
        return
    if not reverse:
        report_ids = [instance.pk]
    elif pk_set is not None:
        report_ids = list(pk_set)
    else:  # clearing a code's reports
        report_ids = list(instance.reports.values_list("pk", flat=True))
    if Report._base_manager.filter(pk__in=report_ids, status=Report.Status.SIGNED).exists():
        raise SignedReportError("The finding codes of a signed report cannot be changed.")

from django import template

from accounts.permissions import can
from studies.reporting import selectors, services
from studies.reporting.forms import ReportStartForm

register = template.Library()


@register.inclusion_tag("studies/reports/_study_reading.html", takes_context=True)
def study_reading(context, study):
    """The study page's reading section: status, claim, report versions (no report text here;
    the text is read on the report's own, audited page)."""
    user = context["request"].user
    reports = selectors.study_reports(user=user, study=study)
    draft = next((r for r in reports if not r.is_signed), None)
    can_write = can(user, services.WRITE_PERM)
    holder_is_me = study.claimed_by_id is not None and study.claimed_by_id == user.pk
    return {
        "request": context["request"],
        "csrf_token": context.get("csrf_token"),
        "study": study,
        "reports": reports,
        "draft": draft,
        "can_view_reports": can(user, services.VIEW_PERM),
        # A signed study is claimed again by amending its report, not from here.
        "can_claim": can(user, services.CLAIM_PERM)
        and study.claimed_by_id is None
        and study.reading_status in selectors.OPEN_STATUSES,
        "can_release": study.claimed_by_id is not None
        and (holder_is_me or can(user, services.RELEASE_ANY_PERM)),
        "can_start": can_write and not reports,
        "start_form": ReportStartForm(category=study.category)
        if can_write and not reports
        else None,
    }

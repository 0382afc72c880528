"""Writes of reading and reporting: claims, drafts, signing and amendments.

Every entry point checks the role, locks what it changes and writes its audit row in the same
transaction. A claim is taken with a conditional UPDATE, so of two radiologists claiming at
once exactly one wins.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.audit import CREATE, UPDATE, Actor, audit_record
from accounts.permissions import can
from studies.models import FindingCode, ReadingStatus, Report, ReportTemplate, Study
from studies.reporting.status import check_transition, status_after_signing

VIEW_PERM = "studies.view_report"
WRITE_PERM = "studies.add_report"
CHANGE_PERM = "studies.change_report"
SIGN_PERM = "studies.sign_report"
CLAIM_PERM = "studies.claim_study"
RELEASE_ANY_PERM = "studies.release_any_claim"
TURNAROUND_PERM = "studies.view_turnaround"

CLAIM = "claim"
RELEASE = "release"
SIGN = "sign"
AMEND = "amend"
PRINT = "print"


class ClaimConflict(ValidationError):
    """The study is held by another radiologist."""


def _require(actor: Actor, perm: str) -> None:
    if not can(actor.user, perm):
        raise PermissionDenied(_("You do not have permission to do this."))


def _holder_name(study: Study) -> str:
    holder = study.claimed_by
    return holder.display_name if holder is not None else "—"


# --- Claims ---------------------------------------------------------------------------------


def study_claim(*, actor: Actor, study: Study) -> Study:
    """Claim ``study`` for reading. Claiming one's own claim again is harmless; a study held by
    someone else raises :class:`ClaimConflict` naming the holder."""
    _require(actor, CLAIM_PERM)
    with transaction.atomic():
        won = (
            Study.objects.filter(pk=study.pk, claimed_by__isnull=True).update(
                claimed_by=actor.user, claimed_at=timezone.now()
            )
            == 1
        )
        locked = (
            Study.objects.select_for_update(of=("self",))
            .select_related("claimed_by")
            .get(pk=study.pk)
        )
        if not won:
            if locked.claimed_by_id == actor.user_id:
                _copy_claim(locked, study)
                return study
            raise ClaimConflict(
                _("This study is being read by %(holder)s.") % {"holder": _holder_name(locked)},
                code="claimed",
            )
        if locked.reading_status == ReadingStatus.UNREAD:
            check_transition(locked.reading_status, ReadingStatus.IN_PROGRESS)
            locked.reading_status = ReadingStatus.IN_PROGRESS
            locked.save(update_fields=["reading_status"])
        audit_record(actor=actor, action=CLAIM, obj=locked)
    _copy_claim(locked, study)
    return study


def study_release(*, actor: Actor, study: Study) -> Study:
    """Release a claim: by its holder, or by someone allowed to release any claim."""
    with transaction.atomic():
        locked = Study.objects.select_for_update().get(pk=study.pk)
        if locked.claimed_by_id is None:
            _copy_claim(locked, study)
            return study
        holder_id = locked.claimed_by_id
        if holder_id != actor.user_id and not can(actor.user, RELEASE_ANY_PERM):
            raise PermissionDenied(
                _("Only the reader holding the study or an administrator may release it.")
            )
        locked.claimed_by = None
        locked.claimed_at = None
        fields = ["claimed_by", "claimed_at"]
        signed = Report.objects.filter(study=locked, status=Report.Status.SIGNED).exists()
        if locked.reading_status == ReadingStatus.IN_PROGRESS and not signed:
            check_transition(locked.reading_status, ReadingStatus.UNREAD)
            locked.reading_status = ReadingStatus.UNREAD
            fields.append("reading_status")
        locked.save(update_fields=fields)
        audit_record(actor=actor, action=RELEASE, obj=locked, details={"holder_id": holder_id})
    _copy_claim(locked, study)
    return study


def _copy_claim(source: Study, target: Study) -> None:
    for name in ("claimed_by_id", "claimed_at", "reading_status"):
        setattr(target, name, getattr(source, name))
    if "claimed_by" in target._state.fields_cache:
        del target._state.fields_cache["claimed_by"]


def _ensure_holder(actor: Actor, study: Study) -> Study:
    """The study locked, claimed by the actor (claimed now when nobody holds it)."""
    study_claim(actor=actor, study=study)
    return Study.objects.select_for_update().get(pk=study.pk)


# --- Reports --------------------------------------------------------------------------------


def _set_codes(report: Report, codes) -> list[str]:
    found = list(FindingCode.objects.filter(code__in=list(codes or [])))
    missing = sorted(set(codes or []) - {c.code for c in found})
    if missing:
        raise ValidationError(
            {"finding_codes": _("Unknown finding codes: %(codes)s") % {"codes": ", ".join(missing)}}
        )
    report.finding_codes.set(found)
    return sorted(c.code for c in found)


@transaction.atomic
def report_draft_create(
    *,
    actor: Actor,
    study: Study,
    conclusion: str = "",
    finding_codes=(),
    template: ReportTemplate | None = None,
) -> Report:
    """Start the first report of a study (claiming it). A template fills the conclusion."""
    _require(actor, WRITE_PERM)
    locked = _ensure_holder(actor, study)
    if Report.objects.filter(study=locked).exists():
        raise ValidationError(
            _("This study already has a report: continue its draft or amend the signed one.")
        )
    if template is not None:
        if template.category != locked.category or not template.active:
            raise ValidationError(
                {"template": _("This template is not for this study's category.")}
            )
        conclusion = conclusion or template.conclusion
    report = Report.objects.create(
        study=locked, version=1, author=actor.user, conclusion=conclusion or ""
    )
    codes = _set_codes(report, finding_codes)
    audit_record(
        actor=actor,
        action=CREATE,
        obj=report,
        details={"version": 1, "template": template.pk if template else None, "codes": codes},
    )
    return report


def _lock_draft(actor: Actor, report: Report) -> Report:
    locked = (
        Report.objects.select_for_update(of=("self",)).select_related("study").get(pk=report.pk)
    )
    if locked.is_signed:
        raise ValidationError(_("This report is signed and can no longer be changed; amend it."))
    if locked.author_id != actor.user_id:
        raise PermissionDenied(_("Only the author of a draft may change or sign it."))
    return locked


@transaction.atomic
def report_draft_update(
    *, actor: Actor, report: Report, conclusion: str | None = None, finding_codes=None
) -> Report:
    """Save a draft (the editor's autosave calls this)."""
    _require(actor, CHANGE_PERM)
    locked = _lock_draft(actor, report)
    changes = {}
    if conclusion is not None and conclusion != locked.conclusion:
        locked.conclusion = conclusion
        changes["conclusion"] = True
    locked.save()
    if finding_codes is not None:
        before = sorted(locked.finding_codes.values_list("code", flat=True))
        after = _set_codes(locked, finding_codes)
        if before != after:
            changes["finding_codes"] = [before, after]
    if changes:
        audit_record(actor=actor, action=UPDATE, obj=locked, details={"changes": changes})
    return locked


@transaction.atomic
def report_sign(*, actor: Actor, report: Report, preliminary: bool = False) -> Report:
    """Sign a draft: it becomes immutable, the study's reading status moves on and the claim
    is released."""
    _require(actor, SIGN_PERM)
    locked = _lock_draft(actor, report)
    if not locked.conclusion.strip():
        raise ValidationError({"conclusion": _("Write the conclusion before signing.")})
    study = Study.objects.select_for_update().get(pk=locked.study_id)
    if study.claimed_by_id not in (None, actor.user_id):
        raise ClaimConflict(
            _("This study is being read by %(holder)s.") % {"holder": _holder_name(study)},
            code="claimed",
        )
    study.reading_status = status_after_signing(
        study.reading_status, preliminary=preliminary, amendment=locked.amends_id is not None
    )
    study.claimed_by = None
    study.claimed_at = None
    study.save(update_fields=["reading_status", "claimed_by", "claimed_at"])
    locked.status = Report.Status.SIGNED
    locked.preliminary = preliminary
    locked.signed_at = timezone.now()
    locked.save()
    audit_record(
        actor=actor,
        action=SIGN,
        obj=locked,
        details={"version": locked.version, "preliminary": preliminary},
    )
    return locked


@transaction.atomic
def report_amend(*, actor: Actor, report: Report, reason: str = "") -> Report:
    """Start a new version of a signed report (a draft copying its text and codes); the signed
    version stays as it was and readable."""
    _require(actor, WRITE_PERM)
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": _("Give the reason for the amendment.")})
    signed = Report.objects.select_related("study").get(pk=report.pk)
    if not signed.is_signed:
        raise ValidationError(_("Only a signed report can be amended; edit the draft instead."))
    locked = _ensure_holder(actor, signed.study)
    latest = Report.objects.filter(study=locked).aggregate(v=Max("version"))["v"]
    if latest != signed.version:
        raise ValidationError(_("Only the latest version of a report can be amended."))
    draft = Report.objects.create(
        study=locked,
        version=signed.version + 1,
        author=actor.user,
        conclusion=signed.conclusion,
        amends=signed,
        amendment_reason=reason,
    )
    draft.finding_codes.set(signed.finding_codes.all())
    audit_record(
        actor=actor,
        action=AMEND,
        obj=draft,
        reason=reason,
        details={"version": draft.version, "amends": signed.pk},
    )
    return draft

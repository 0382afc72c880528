"""Full-text search over report text.

PostgreSQL: the conclusion is matched in the Russian and the English configurations (Russian
morphology: «пневмония» finds «пневмонии») through ``Report.search_vector`` (kept by a trigger
and GIN-indexed, migration 0006), ranked,
with the matches highlighted by ``ts_headline``. SQLite: every word must occur as a plain,
case-insensitive substring, highlighted the same way. Highlighting marks are private control
characters replaced by ``<mark>`` only after the text is HTML-escaped, so report text can never
inject markup.
"""

from __future__ import annotations

import re

from django.contrib.postgres.search import SearchHeadline, SearchQuery, SearchRank
from django.db import connection
from django.db.models import F, QuerySet
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

START, STOP = "\x02", "\x03"
_WORD = re.compile(r"\w+", re.UNICODE)


def uses_postgres() -> bool:
    return connection.vendor == "postgresql"


def words(text: str) -> list[str]:
    return _WORD.findall(text or "")


def report_search(qs: QuerySet, text: str) -> QuerySet:
    """``qs`` narrowed to reports whose conclusion matches ``text``, best matches first, each
    with ``headline`` (the conclusion with ``START``/``STOP`` around the matches)."""
    text = (text or "").strip()
    if not words(text):
        return qs
    if uses_postgres():
        query = SearchQuery(text, config="russian", search_type="websearch") | SearchQuery(
            text, config="english", search_type="websearch"
        )
        return (
            qs.filter(search_vector=query)
            .annotate(
                rank=SearchRank(F("search_vector"), query),
                headline=SearchHeadline(
                    "conclusion",
                    query,
                    config="russian",
                    start_sel=START,
                    stop_sel=STOP,
                    max_words=40,
                    min_words=15,
                    max_fragments=3,
                ),
            )
            .order_by("-rank", "-signed_at", "-id")
        )
    # SQLite's LIKE folds the case of ASCII letters only («Пневмония» would miss «пневмония»):
    # narrow by the database where it can, then match case-folded words in Python.
    terms = [w.casefold() for w in words(text)]
    candidates = qs
    for word in words(text):
        if word.isascii():
            candidates = candidates.filter(conclusion__icontains=word)
    matching = [
        pk
        for pk, conclusion in candidates.values_list("pk", "conclusion").iterator(chunk_size=2000)
        if all(term in conclusion.casefold() for term in terms)
    ]
    return qs.filter(pk__in=matching)


def highlighted(report, text: str) -> SafeString:
    """The report's search excerpt as safe HTML with the matches in ``<mark>``."""
    raw = getattr(report, "headline", None)
    if raw is None:
        raw = _plain_headline(report.conclusion, words(text))
    html = escape(raw).replace(START, "<mark>").replace(STOP, "</mark>")
    return mark_safe(html)


def _plain_headline(conclusion: str, terms: list[str], width: int = 300) -> str:
    if not terms:
        return conclusion[:width]
    pattern = re.compile("|".join(re.escape(t) for t in terms), re.IGNORECASE)
    first = pattern.search(conclusion)
    start = max(0, first.start() - 80) if first else 0
    excerpt = conclusion[start : start + width]
    marked = pattern.sub(lambda m: f"{START}{m.group(0)}{STOP}", excerpt)
    return ("…" if start else "") + marked + ("…" if start + width < len(conclusion) else "")

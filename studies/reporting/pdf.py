"""The printed report as a PDF (fpdf2), in DejaVu Sans so Cyrillic renders.

The font files come from an installed PyPI package (matplotlib ships DejaVu Sans; nothing is
committed to the repository); ``REPORT_FONT_DIR`` may point elsewhere.
"""

from __future__ import annotations

import importlib.util
import io
import logging
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import translation
from django.utils.translation import gettext as _

from studies.reporting.printing import PrintedReport

REGULAR, BOLD = "DejaVuSans.ttf", "DejaVuSans-Bold.ttf"

# fontTools logs every glyph subset at INFO: one screenful per PDF in the server log.
logging.getLogger("fontTools").setLevel(logging.WARNING)


def font_dir() -> Path:
    configured = getattr(settings, "REPORT_FONT_DIR", "")
    if configured:
        return Path(configured)
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        raise ImproperlyConfigured(
            "The report PDF needs DejaVu Sans: install matplotlib (requirements-web.txt) or set "
            "REPORT_FONT_DIR to a folder holding DejaVuSans.ttf and DejaVuSans-Bold.ttf."
        )
    return Path(spec.submodule_search_locations[0]) / "mpl-data" / "fonts" / "ttf"


def render_pdf(printed: PrintedReport) -> bytes:
    from fpdf import FPDF

    fonts = font_dir()
    pdf = FPDF(format="A4")
    pdf.set_lang(printed.language or "ru")
    pdf.set_title(printed.title)
    pdf.set_author(printed.author)
    pdf.set_creator(printed.institution_name or "MIS")
    pdf.add_font("DejaVu", "", str(fonts / REGULAR))
    pdf.add_font("DejaVu", "B", str(fonts / BOLD))
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    width = pdf.epw

    if printed.logo:
        try:
            pdf.image(io.BytesIO(printed.logo), x=pdf.l_margin, y=pdf.t_margin, h=18)
            pdf.set_x(pdf.l_margin + 45)
        except Exception:
            pass
    pdf.set_font("DejaVu", "B", 14)
    x = pdf.get_x()
    pdf.multi_cell(
        width - (x - pdf.l_margin), 7, printed.institution_name or "", align="L", new_x="LMARGIN"
    )
    if printed.institution_address:
        pdf.set_font("DejaVu", "", 9)
        pdf.set_x(x)
        pdf.multi_cell(width - (x - pdf.l_margin), 5, printed.institution_address, new_x="LMARGIN")
    pdf.set_y(max(pdf.get_y(), pdf.t_margin + 20) + 4)

    pdf.set_font("DejaVu", "B", 13)
    pdf.multi_cell(width, 8, printed.title, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    for label, value in printed.rows:
        pdf.set_font("DejaVu", "B", 10)
        pdf.cell(55, 6, label)
        pdf.set_font("DejaVu", "", 10)
        pdf.multi_cell(width - 55, 6, value or "—", new_x="LMARGIN", new_y="NEXT")
    for heading, text in printed.sections:
        pdf.ln(3)
        pdf.set_font("DejaVu", "B", 11)
        pdf.cell(width, 7, heading, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("DejaVu", "", 10)
        pdf.multi_cell(width, 5.5, text or "—", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)
    pdf.set_font("DejaVu", "", 10)
    for line in printed.signature_lines:
        pdf.multi_cell(width, 5.5, line, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 8)
    pdf.ln(4)
    with translation.override(printed.language or None):
        footer = _("Printed %(when)s") % {"when": printed.printed_at}
    pdf.multi_cell(width, 4, footer, new_x="LMARGIN")
    return bytes(pdf.output())

"""The Russian catalogue: complete, compiled, up to date with the source, placeholders intact.

``locale/ru/LC_MESSAGES/django.mo`` is committed (a fresh machine with only Python has no
gettext), so these tests also check that it was recompiled after the last change to the .po.
To refresh both after changing translatable strings::

    make messages   # makemessages -l ru --no-obsolete --no-location ... && compilemessages
"""

import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import polib
import pytest
from django.utils import translation

from conftest import require

ROOT = Path(__file__).resolve().parents[2]
LC_MESSAGES = ROOT / "locale" / "ru" / "LC_MESSAGES"
PO_PATH = LC_MESSAGES / "django.po"
MO_PATH = LC_MESSAGES / "django.mo"

RU_PLURAL_FORMS = (
    "nplurals=3; plural=(n%10==1 && n%100!=11 ? 0 : n%10>=2 && n%10<=4 && "
    "(n%100<10 || n%100>=20) ? 1 : 2);"
)

# Top-level entries of the project that makemessages must not scan (same as `make messages`).
EXCLUDED_TOP_LEVEL = {".venv", "venv", "var", "bench", "locale", "node_modules", "test-artifacts"}

# printf-style placeholders as Python's %-operator reads them: %s, %d, %(name)s, %(n)05.2f ...
# A space is not accepted as a flag, so prose such as "50% of" is not taken for a placeholder.
_PERCENT = re.compile(
    r"%(?:\((?P<name>[^)]*)\))?[#0+\-]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[hlL]?(?P<conv>[diouxXeEfFgGcrsa%])"
)
# str.format-style placeholders: {name}, {0}, {name!r}, {value:>10} (but not "{{" escapes).
_BRACE = re.compile(r"(?<!\{)\{(?P<field>[A-Za-z_]\w*|\d*)(?:![rsa])?(?::[^{}]*)?\}(?!\})")


def _key(entry):
    return (entry.msgctxt or "", entry.msgid)


def _label(entry):
    return f"{entry.msgctxt}|{entry.msgid}" if entry.msgctxt else entry.msgid


def _placeholders(text):
    """Named placeholders as a set (order and repetition may change in a translation);
    positional ones (%s, {}) as a count, since their number must stay the same."""
    named, positional = set(), Counter()
    for match in _PERCENT.finditer(text):
        if match.group("conv") == "%":
            continue  # "%%" is a literal percent sign
        if match.group("name") is not None:
            named.add(f"%({match.group('name')}){match.group('conv')}")
        else:
            positional[f"%{match.group('conv')}"] += 1
    for match in _BRACE.finditer(text):
        field = match.group("field")
        if field and not field.isdigit():
            named.add(f"{{{field}}}")
        else:
            positional["{" + field + "}"] += 1
    return named, positional


@pytest.fixture(scope="module")
def po():
    assert PO_PATH.is_file(), f"{PO_PATH} is missing: run `make messages`"
    return polib.pofile(str(PO_PATH))


@pytest.fixture(scope="module")
def mo():
    assert MO_PATH.is_file(), f"{MO_PATH} is missing: run `manage.py compilemessages -l ru`"
    return polib.mofile(str(MO_PATH))


def _active_entries(po):
    return [entry for entry in po if not entry.obsolete]


def test_po_header_is_russian_with_standard_plural_forms(po):
    assert not po.metadata_is_fuzzy, "the header of django.po is marked fuzzy"
    assert po.metadata.get("Language") == "ru"
    assert "charset=UTF-8" in po.metadata.get("Content-Type", "")
    plural_forms = " ".join(po.metadata.get("Plural-Forms", "").split())
    assert plural_forms == RU_PLURAL_FORMS


def test_po_has_no_untranslated_or_fuzzy_entries(po):
    untranslated = [
        _label(e) for e in _active_entries(po) if not e.translated() and "fuzzy" not in e.flags
    ]
    fuzzy = [_label(e) for e in _active_entries(po) if "fuzzy" in e.flags]
    assert not untranslated, f"untranslated in {PO_PATH.name}: {untranslated}"
    assert not fuzzy, f"fuzzy (not used by gettext) in {PO_PATH.name}: {fuzzy}"


def test_plural_entries_have_all_three_russian_forms(po):
    incomplete = [
        _label(e)
        for e in _active_entries(po)
        if e.msgid_plural
        and (sorted(e.msgstr_plural) != [0, 1, 2] or not all(e.msgstr_plural.values()))
    ]
    assert not incomplete, f"plural entries without exactly 3 non-empty forms: {incomplete}"


def _catalogue(entries):
    result = {}
    for entry in entries:
        if not entry.msgid:  # the header
            continue
        if entry.msgid_plural:
            value = (
                entry.msgid_plural,
                tuple(sorted((int(k), v) for k, v in entry.msgstr_plural.items())),
            )
        else:
            value = entry.msgstr
        result[_key(entry)] = value
    return result


def test_committed_mo_matches_po(po, mo):
    expected = _catalogue(
        e for e in _active_entries(po) if e.translated() and "fuzzy" not in e.flags
    )
    compiled = _catalogue(mo)
    missing = sorted(k[1] for k in expected.keys() - compiled.keys())
    extra = sorted(k[1] for k in compiled.keys() - expected.keys())
    differing = sorted(
        k[1] for k in expected.keys() & compiled.keys() if expected[k] != compiled[k]
    )
    hint = "; recompile with `manage.py compilemessages -l ru` and commit django.mo"
    assert not missing, f"in django.po but not in django.mo: {missing}{hint}"
    assert not extra, f"in django.mo but no longer in django.po: {extra}{hint}"
    assert not differing, (
        f"django.mo translates these differently from django.po: {differing}{hint}"
    )
    assert (
        mo.metadata.get("Plural-Forms", "").split() == po.metadata.get("Plural-Forms", "").split()
    ), f"Plural-Forms differ between django.po and django.mo{hint}"


def test_placeholders_are_preserved(po):
    broken = []
    for entry in _active_entries(po):
        if not entry.msgid:
            continue
        if entry.msgid_plural:
            # Russian form 0 also serves 21, 31, ... so every form keeps the plural's placeholders.
            expected = _placeholders(entry.msgid_plural)
            translations = [entry.msgstr_plural[k] for k in sorted(entry.msgstr_plural)]
        else:
            expected = _placeholders(entry.msgid)
            translations = [entry.msgstr]
        for text in translations:
            if text and _placeholders(text) != expected:
                broken.append(f"{entry.msgid!r} -> {text!r}")
    assert not broken, "placeholders differ between msgid and msgstr:\n" + "\n".join(broken)


def test_placeholder_parser_catches_what_it_should():
    assert _placeholders("%(n)d of %(total)s, %s and {name}") == (
        {"%(n)d", "%(total)s", "{name}"},
        Counter({"%s": 1}),
    )
    assert _placeholders("100%% sure, 50% of {{ literal }}") == (set(), Counter())
    assert _placeholders("%(a)s") != _placeholders("%(b)s")
    assert _placeholders("%s %s") != _placeholders("%s")


# What makemessages reads for the "django" domain by default; nothing else is copied, so model
# weights, media or data files in the tree never slow the copy down.
SOURCE_SUFFIXES = {".py", ".html", ".txt"}


def _ignore_for_copy(directory, names):
    at_root = Path(directory).resolve() == ROOT
    ignored = set()
    for name in names:
        path = Path(directory) / name
        if (
            name.startswith(".")
            or name == "__pycache__"
            or (at_root and name in EXCLUDED_TOP_LEVEL)
        ):
            ignored.add(name)
        elif not path.is_dir() and path.suffix not in SOURCE_SUFFIXES:
            ignored.add(name)
    return ignored


def test_po_is_up_to_date_with_the_source(po, tmp_path):
    """makemessages on a copy of the source finds no msgid that django.po lacks."""
    require(
        all(shutil.which(tool) for tool in ("xgettext", "msguniq", "msgmerge")),
        "GNU gettext (xgettext, msguniq, msgmerge) is needed to extract messages",
    )
    project = tmp_path / "project"
    # A copy, so that makemessages neither rewrites the committed .po nor leaves its temporary
    # *.html.py files in templates/ where other processes may see them.
    shutil.copytree(ROOT, project, ignore=_ignore_for_copy, symlinks=True)
    (project / "locale").mkdir()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "mis.settings",
        "MIS_MODE": "embedded",
        "MIS_VAR_DIR": str(tmp_path / "var"),
        "SECRET_KEY": "i18n-test-only",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.pop("DATABASE_URL", None)
    command = [
        sys.executable,
        "manage.py",
        "makemessages",
        "--locale",
        "ru",
        "--no-obsolete",
        "--no-location",
        "--ignore=.venv",
        "--ignore=var",
        "--ignore=bench",
        "--ignore=locale",
    ]
    result = subprocess.run(
        command, cwd=project, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"makemessages failed:\n{result.stdout}\n{result.stderr}"
    extracted_path = project / "locale" / "ru" / "LC_MESSAGES" / "django.po"
    assert extracted_path.is_file(), f"makemessages wrote no catalogue:\n{result.stdout}"
    extracted = polib.pofile(str(extracted_path))

    committed = {(_key(e), e.msgid_plural) for e in _active_entries(po)}
    source = {(_key(e), e.msgid_plural) for e in extracted if e.msgid}
    assert len(source) > 50, "makemessages found suspiciously few messages in the copy"
    missing = sorted(
        (f"{ctx}|{msgid}" if ctx else msgid) + (f"  (plural: {plural})" if plural else "")
        for (ctx, msgid), plural in source - committed
    )
    assert not missing, (
        "messages in the source missing from locale/ru/LC_MESSAGES/django.po; run "
        "`make messages`, translate them and commit django.po and django.mo:\n" + "\n".join(missing)
    )


def _translate(language, message, plural=None, count=None):
    """gettext/ngettext called with variables, not literals: makemessages (which scans this file
    too) must not extract the test's strings into the project's catalogue."""
    with translation.override(language):
        if plural is None:
            return translation.gettext(message)
        return translation.ngettext(message, plural, count)


def test_project_russian_translations_are_active():
    assert _translate("ru", "Patients") == "Пациенты"
    snils_error = "SNILS must have 11 digits, e.g. 112-233-445 95."
    assert _translate("ru", snils_error) == (
        "СНИЛС должен содержать 11 цифр, например 112-233-445 95."
    )
    assert _translate("en", "Patients") == "Patients"


def test_django_own_russian_translations_are_active():
    assert _translate("ru", "Enter a valid date.") == "Введите правильную дату."


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (1, "Найден 1 пациент"),
        (21, "Найден 21 пациент"),
        (3, "Найдено 3 пациента"),
        (22, "Найдено 22 пациента"),
        (5, "Найдено 5 пациентов"),
        (11, "Найдено 11 пациентов"),
        (12, "Найдено 12 пациентов"),
        (0, "Найдено 0 пациентов"),
    ],
)
def test_russian_plural_forms_are_applied(count, expected):
    """The catalogue's 3-form Plural-Forms is used, not the 4-form one of Django's own ru."""
    singular, plural = "%(counter)s patient found", "%(counter)s patients found"
    assert _translate("ru", singular, plural, count) % {"counter": count} == expected

"""clean_filename / extension_of: hostile client file names become safe ones."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webframe.filenames import clean_filename, extension_of

WINDOWS_DEVICES = (
    {"CON", "PRN", "AUX", "NUL"} | {f"COM{i}" for i in range(10)} | {f"LPT{i}" for i in range(10)}
)


def assert_safe(name: str, max_length: int = 120) -> None:
    assert name
    assert "/" not in name and "\\" not in name
    assert ".." not in name
    assert not name.startswith((".", "-", " "))
    assert not name.endswith((".", " "))
    assert all(unicodedata.category(ch) not in ("Cc", "Cf") for ch in name)
    assert len(name.encode("utf-8")) <= max_length
    assert name.split(".", 1)[0].strip().upper() not in WINDOWS_DEVICES


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/tmp/x.txt", "x.txt"),
        ("C:\\Windows\\x.txt", "x.txt"),
        ("..\\..\\x.txt", "x.txt"),
        ("../..\\x.txt", "x.txt"),
        ("sub/dir\\x.txt", "x.txt"),
        (".htaccess", "htaccess"),
        ("-rf", "rf"),
        ("CON", "_CON"),
        ("con", "_con"),
        ("NUL.txt", "_NUL.txt"),
        ("lpt9.tar.gz", "_lpt9.tar.gz"),
        ("a.jpg.php", "a.jpg.php"),
        ("", "upload"),
        (None, "upload"),
        ("   ", "upload"),
        ("...", "upload"),
        ("<script>.png", "_script_.png"),
        ("a\x00b.txt", "ab.txt"),
        ("line\nbreak.txt", "linebreak.txt"),
        ("tab\there.txt", "tabhere.txt"),
        ("a..b.txt", "a.b.txt"),
        ("name. . .", "name"),
        ("dir/", "dir"),
        ("report 2024 (final).pdf", "report 2024 (final).pdf"),
    ],
)
def test_known_names(raw: str | None, expected: str) -> None:
    assert clean_filename(raw) == expected
    assert_safe(clean_filename(raw))


def test_html_entity_separator_is_not_decoded_and_has_no_dots() -> None:
    cleaned = clean_filename("..&#x2F;x.txt")
    assert_safe(cleaned)
    assert cleaned.endswith("x.txt")
    assert "&" not in cleaned and ";" not in cleaned


def test_long_name_is_capped_keeping_extension() -> None:
    cleaned = clean_filename("a" * 300 + ".txt")
    assert cleaned.endswith(".txt")
    assert len(cleaned.encode("utf-8")) == 120
    assert_safe(cleaned)


def test_long_multibyte_name_is_capped_in_utf8_bytes() -> None:
    cleaned = clean_filename("é" * 300 + ".jpg", max_length=50)
    assert cleaned.endswith(".jpg")
    assert len(cleaned.encode("utf-8")) <= 50
    assert_safe(cleaned, 50)
    cleaned.encode("utf-8").decode("utf-8")  # no half character left


def test_long_name_without_extension_and_huge_extension() -> None:
    assert clean_filename("b" * 300) == "b" * 120
    cleaned = clean_filename("x." + "y" * 300)
    assert_safe(cleaned)


def test_composed_and_decomposed_forms_agree() -> None:
    composed = "caf\u00e9.txt"
    decomposed = "cafe\u0301.txt"
    assert composed != decomposed
    assert clean_filename(composed) == clean_filename(decomposed) == "caf\u00e9.txt"


def test_unicode_letters_and_digits_are_kept() -> None:
    assert clean_filename("Ünïcödé 日本語 ٣.png") == "Ünïcödé 日本語 ٣.png"


def test_fullwidth_separators_and_dots_are_neutralised() -> None:
    # NFKC turns U+FF0F/U+FF0E into "/" and "." before the separator rules run.
    assert clean_filename("\uff0e\uff0e\uff0fetc\uff0fpasswd") == "passwd"
    assert clean_filename("COM\u00b9.txt") == "_COM1.txt"


def test_bidi_override_is_dropped() -> None:
    assert clean_filename("invoice\u202etxt.exe") == "invoicetxt.exe"


def test_fallback_and_max_length() -> None:
    assert clean_filename("", fallback="file") == "file"
    assert clean_filename("<>|", fallback="file") == "___"
    with pytest.raises(ValueError):
        clean_filename("x", max_length=0)


def test_device_name_prefix_survives_truncation() -> None:
    cleaned = clean_filename("CON." + "x" * 10, max_length=8)
    assert_safe(cleaned, 8)


@pytest.mark.parametrize(
    ("name", "ext"),
    [
        ("a.jpg.php", ".php"),
        ("photo.JPG", ".jpg"),
        ("archive.tar.gz", ".gz"),
        (".htaccess", ""),
        ("noext", ""),
        ("a.php.", ".php"),
        ("a.php ", ".php"),
        ("dir.d/file", ""),
        ("", ""),
    ],
)
def test_extension_of(name: str, ext: str) -> None:
    assert extension_of(name) == ext


# Any text, with the characters that matter here made frequent.
_RAW_CHARS = st.one_of(
    st.characters(exclude_categories=()),
    st.characters(categories=["Cc", "Cf", "Cs", "Mn", "Zs"]),
    st.sampled_from(list('./\\-. :*?"<>|%')),
)


@settings(max_examples=500, deadline=None)
@given(raw=st.text(_RAW_CHARS, max_size=300), max_length=st.integers(6, 255))
def test_any_name_gives_a_safe_storable_name(raw: str, max_length: int) -> None:
    # Found probing the demo with odd, long and unicode names: never an exception.
    name = clean_filename(raw, max_length=max_length)
    assert 0 < len(name.encode("utf-8")) <= max_length  # strict UTF-8: no lone surrogate
    assert "/" not in name and "\\" not in name and ".." not in name
    assert not name.startswith((".", "-")) and name == name.rstrip(". ")
    assert not any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in name)
    assert clean_filename(name, max_length=max_length) == name  # already clean
    ext = extension_of(name)
    assert ext == ext.lower() and (not ext or name.lower().endswith(ext))

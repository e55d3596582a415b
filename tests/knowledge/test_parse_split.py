"""Parsing real files of every supported type, and splitting them into segments."""

from __future__ import annotations

import pytest

from parley.knowledge.parse import ParseError, attachment_text, extension_for_type, parse_bytes
from parley.knowledge.split import split_document
from tests.knowledge import files


def segments_of(name: str, data: bytes, max_chars: int = 600):
    document = parse_bytes(name, data)
    return document, split_document(document, max_chars)


@pytest.mark.parametrize("name", sorted(files.every_type()))
def test_every_type_parses_and_offsets_point_at_the_segment_text(name):
    document, segments = segments_of(name, files.every_type()[name])
    assert segments
    whole = document.text
    for segment in segments:
        assert whole[segment.start : segment.end] == segment.text


def test_markdown_keeps_the_heading_path():
    _, segments = segments_of("guide.md", files.GUIDE_MD.encode())
    by_text = {s.text: s for s in segments}
    refund = next(s for t, s in by_text.items() if "退款将在" in t)
    assert refund.headings == ("Parley Guide", "退款")
    password = next(s for t, s in by_text.items() if "reset your password" in t)
    assert password.headings == ("Parley Guide", "Passwords")


def test_html_drops_scripts_and_keeps_headings():
    document, segments = segments_of("faq.html", files.FAQ_HTML.encode())
    assert document.title == "Shipping FAQ"
    assert "script text" not in document.text and "color: red" not in document.text
    international = next(s for s in segments if "国际订单" in s.text)
    assert international.headings == ("Shipping", "国际运输")


def test_pdf_segments_know_their_page():
    _, segments = segments_of("manual.pdf", files.pdf_bytes())
    battery = next(s for s in segments if "battery" in s.text)
    install = next(s for s in segments if "installer" in s.text)
    assert (install.page, battery.page) == (1, 2)


def test_docx_headings_and_tables():
    document, segments = segments_of("policy.docx", files.docx_bytes())
    sick = next(s for s in segments if "病假。" in s.text)
    assert sick.headings == ("Leave policy", "病假")
    assert "Parking | Free for all staff" in document.text


def test_xlsx_rows_keep_their_sheet_and_headers():
    _, segments = segments_of("prices.xlsx", files.xlsx_bytes())
    carrot = next(s for s in segments if "Carrot" in s.text)
    assert carrot.sheet == "Vegetables"
    apple = next(s for s in segments if "Apple" in s.text)
    assert apple.sheet == "Fruit"
    assert "Name: Apple; Price per kilo: 3 yuan" in apple.text


def test_csv_rows_read_as_header_value_pairs():
    document, _ = segments_of("stores.csv", files.csv_bytes())
    assert "city: 上海; store address: 浦东新区世纪大道100号" in document.text


def test_gb18030_text_is_decoded():
    document, _ = segments_of("notes.txt", "员工手册：请准时上班。".encode("gb18030"))
    assert document.text == "员工手册：请准时上班。"


def test_long_text_is_cut_at_sentences_within_the_limit():
    text = ("This sentence is about the refund policy. " * 40 + "\n") + ("这是一个关于年假政策的句子。" * 60)
    document, segments = segments_of("long.txt", text.encode(), max_chars=200)
    assert len(segments) > 5
    assert all(len(s.text) <= 200 for s in segments)
    assert all(document.text[s.start : s.end] == s.text for s in segments)
    # cuts fall after a full stop, not in the middle of a word
    assert all(s.text.endswith((".", "。")) for s in segments[:-1])


def test_unsupported_and_damaged_files_raise_a_clear_error():
    with pytest.raises(ParseError, match="unsupported file type 'exe'"):
        parse_bytes("setup.exe", b"MZ")
    with pytest.raises(ParseError, match="could not read pdf"):
        parse_bytes("broken.pdf", b"%PDF-1.4 this is not really a pdf")
    with pytest.raises(ParseError, match="no text"):
        parse_bytes("empty.md", b"   \n\n")


# --- what a chat may attach besides ------------------------------------------------------------


def test_svg_gives_its_text_and_nothing_it_does_not_show():
    document = parse_bytes("logo.svg", files.LOGO_SVG.encode())
    assert document.title == "Parley logo"
    assert document.text.split("\n")[:3] == ["Parley logo", "A speech bubble", "Talk to us &secret"]
    assert "alert" not in document.text and "fill" not in document.text  # script and style are not text
    assert "root:" not in document.text  # the external entity is never resolved


def test_pptx_slides_with_tables_and_notes_and_old_xls_sheets():
    slides = parse_bytes("roadmap.pptx", files.pptx_bytes())
    assert [(s.page, s.text) for s in slides.sections] == [
        (1, "Roadmap\nShip the v2 face in June.\nMention the beta users."),
        (2, "Budget\nItem | Cost\nServers | 300 yuan"),
    ]
    sheets = parse_bytes("tea.xls", files.xls_bytes())
    assert [(s.sheet, s.text) for s in sheets.sections] == [
        ("Tea", "Name | Price per cup\nName: Oolong; Price per cup: 12 yuan\nName: 龙井; Price per cup: 18 元"),
    ]
    assert parse_bytes("settings.json", files.SETTINGS_JSON.encode()).text == files.SETTINGS_JSON


def test_an_attached_picture_is_accepted_with_no_text_and_a_document_still_must_read():
    assert attachment_text("photo.png", files.PNG) == ""
    assert attachment_text("blank.svg", b'<svg xmlns="http://www.w3.org/2000/svg"><rect/></svg>') == ""
    assert attachment_text("logo.svg", files.LOGO_SVG.encode()).startswith("Parley logo")
    with pytest.raises(ParseError, match="could not read pdf"):
        attachment_text("broken.pdf", b"%PDF-1.4 not really")
    with pytest.raises(ParseError, match="unsupported file type 'doc'"):
        attachment_text("old.doc", b"\xd0\xcf\x11\xe0")


@pytest.mark.parametrize(
    ("sent", "extension"),
    [
        ("svg+xml", "svg"), ("image/svg+xml", "svg"), ("jpeg", "jpeg"), ("PNG", "png"), (".pdf", "pdf"),
        ("vnd.openxmlformats-officedocument.wordprocessingml.document", "docx"),
        ("vnd.openxmlformats-officedocument.presentationml.presentation", "pptx"),
        ("vnd.ms-excel", "xls"), ("x-icon", "ico"), ("text/markdown", "md"),
    ],
)
def test_file_types_as_clients_name_them_become_extensions(sent, extension):
    assert extension_for_type(sent) == extension

"""Real documents of every supported type, written by the tests themselves."""

from __future__ import annotations

import csv
import io
from pathlib import Path

GUIDE_MD = """# Parley Guide

Welcome to the Parley user guide.

## Passwords

To reset your password, open Settings, choose Security and press Reset password.

## 退款

退款将在七个工作日内原路退回到您的支付账户。
"""

FAQ_HTML = """<html><head><title>Shipping FAQ</title><style>p {color: red}</style></head>
<body><h1>Shipping</h1><p>Orders ship within 48 hours from our Shenzhen warehouse.</p>
<script>var hidden = "script text must not be indexed";</script>
<h2>国际运输</h2><p>国际订单通常需要十到十五天送达。</p></body></html>
"""

NOTES_TXT = "The office wifi password is parley-guest-2024. Ask reception for the printer code.\n"


def pdf_bytes() -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    pdf.add_page()
    pdf.multi_cell(0, 10, "Installation: run the installer and accept the license agreement.")
    pdf.add_page()
    pdf.multi_cell(0, 10, "The battery lasts twelve hours when fully charged.")
    return bytes(pdf.output())


def docx_bytes() -> bytes:
    from docx import Document

    document = Document()
    document.add_heading("Leave policy", level=1)
    document.add_paragraph("Employees receive 15 days of paid annual leave each year.")
    document.add_heading("病假", level=2)
    document.add_paragraph("员工每年可享受十天带薪病假。")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Benefit", "Value"
    table.cell(1, 0).text, table.cell(1, 1).text = "Parking", "Free for all staff"
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def xlsx_bytes() -> bytes:
    from openpyxl import Workbook

    workbook = Workbook()
    fruit = workbook.active
    fruit.title = "Fruit"
    for row in [("Name", "Price per kilo"), ("Apple", "3 yuan"), ("苹果礼盒", "88 元")]:
        fruit.append(row)
    vegetables = workbook.create_sheet("Vegetables")
    for row in [("Name", "Price per kilo"), ("Carrot", "2 yuan")]:
        vegetables.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def csv_bytes() -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerows([("city", "store address"), ("北京", "朝阳区建国路88号"), ("上海", "浦东新区世纪大道100号")])
    return buffer.getvalue().encode("utf-8")


def every_type() -> dict[str, bytes]:
    """One document of each supported type, by file name."""
    return {
        "guide.md": GUIDE_MD.encode(),
        "faq.html": FAQ_HTML.encode(),
        "notes.txt": NOTES_TXT.encode(),
        "manual.pdf": pdf_bytes(),
        "policy.docx": docx_bytes(),
        "prices.xlsx": xlsx_bytes(),
        "stores.csv": csv_bytes(),
    }


def write_all(directory: Path) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, data in every_type().items():
        path = directory / name
        path.write_bytes(data)
        paths[name] = path
    return paths


# --- what a chat may attach besides (adp-chat-client v0.3.1 and v0.6.0) --------------------

LOGO_SVG = """<?xml version="1.0"?>
<!DOCTYPE svg [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<svg xmlns="http://www.w3.org/2000/svg" width="120" height="40">
  <title>Parley logo</title><desc>A speech bubble</desc>
  <style>text { fill: red }</style><script>alert("not text")</script>
  <rect width="120" height="40"/><text x="4" y="20">Talk <tspan>to us</tspan> &secret;</text>
</svg>
"""

SETTINGS_JSON = '{"theme": "dark", "greeting": "Welcome aboard"}'

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
"""The start of a 1x1 PNG: a picture without text."""


def pptx_bytes() -> bytes:
    from pptx import Presentation

    presentation = Presentation()
    slide = presentation.slides.add_slide(presentation.slide_layouts[1])
    slide.shapes.title.text = "Roadmap"
    slide.placeholders[1].text = "Ship the v2 face in June."
    slide.notes_slide.notes_text_frame.text = "Mention the beta users."
    second = presentation.slides.add_slide(presentation.slide_layouts[5])
    second.shapes.title.text = "Budget"
    table = second.shapes.add_table(2, 2, 0, 0, 100, 100).table
    table.cell(0, 0).text, table.cell(0, 1).text = "Item", "Cost"
    table.cell(1, 0).text, table.cell(1, 1).text = "Servers", "300 yuan"
    buffer = io.BytesIO()
    presentation.save(buffer)
    return buffer.getvalue()


def xls_bytes() -> bytes:
    """An old binary Excel file (written once with xlwt; sheet "Tea")."""
    return (Path(__file__).parent / "data" / "tea.xls").read_bytes()

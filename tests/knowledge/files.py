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

"""Documents to text sections that remember where they came from.

Each file type has a parser built on a well-kept library (pypdf, python-docx, python-pptx,
openpyxl, xlrd, markdown-it-py, BeautifulSoup with markdownify, the csv module). A parser
returns `Section`s: a run of text with its page, slide, sheet or heading path. Parsers
register by file extension through `register_parser`, so a new type never edits the
pipeline. A file attached to a chat may also be an image (`attachment_text`): its text is
what it shows as text (an SVG's), else nothing.

Parsing is CPU work: call `parse_file` from a worker thread.
"""

from __future__ import annotations

import csv
import io
import mimetypes
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(slots=True)
class Section:
    text: str
    page: int | None = None
    """1-based page number (PDF) or slide number (PPTX)."""
    sheet: str | None = None
    """Worksheet name (XLSX, XLS)."""
    headings: tuple[str, ...] = ()
    """The heading path above the text (Markdown, HTML, DOCX)."""
    offset: int = 0
    """Character offset of the text in the document's whole text (set by `parse_file`)."""


@dataclass(slots=True)
class ParsedDocument:
    sections: list[Section] = field(default_factory=list)
    title: str = ""

    @property
    def text(self) -> str:
        return SECTION_GAP.join(s.text for s in self.sections)


SECTION_GAP = "\n\n"


class ParseError(Exception):
    """The file could not be read as its type; the message says why, for the operator."""


Parser = Callable[[bytes], ParsedDocument]
_parsers: dict[str, Parser] = {}


def register_parser(extensions: Iterable[str], parser: Parser) -> None:
    for ext in extensions:
        _parsers[ext.lower().lstrip(".")] = parser


def supported_types() -> list[str]:
    return sorted(_parsers)


def file_type(name: str) -> str:
    return Path(name).suffix.lower().lstrip(".")


def parse_bytes(name: str, data: bytes) -> ParsedDocument:
    """Parses `data` as the type its file name says; sets each section's offset."""
    kind = file_type(name)
    parser = _parsers.get(kind)
    if parser is None:
        raise ParseError(f"unsupported file type {kind or '(none)'!r}; supported: {', '.join(supported_types())}")
    try:
        document = parser(data)
    except ParseError:
        raise
    except Exception as exc:  # a library's own error on a damaged file
        raise ParseError(f"could not read {kind} file: {type(exc).__name__}: {exc}"[:500]) from exc
    document.sections = [s for s in document.sections if s.text.strip()]
    if not document.sections:
        raise ParseError("no text found in the document")
    offset = 0
    for section in document.sections:
        section.offset = offset
        offset += len(section.text) + len(SECTION_GAP)
    return document


IMAGE_TYPES = frozenset({"png", "jpg", "jpeg", "bmp", "webp", "gif", "tif", "tiff", "ico", "heic", "svg"})
"""Image extensions a chat may attach: accepted with whatever text they carry, even none."""


def attachment_text(name: str, data: bytes) -> str:
    """The text of a file attached to a chat: a document's text, or an image's ("" when it
    shows none). Raises ParseError for a document that cannot be read."""
    kind = file_type(name)
    if kind in IMAGE_TYPES and kind not in _parsers:
        return ""
    try:
        return parse_bytes(name, data).text
    except ParseError:
        if kind in IMAGE_TYPES:  # an SVG without text is still a picture
            return ""
        raise


_MIME_TYPES = mimetypes.MimeTypes()  # the built-in table only, the same on every machine
for _mime, _ext in {
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": ".pptx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx",
    "text/markdown": ".md",
    "image/x-icon": ".ico",
}.items():
    _MIME_TYPES.add_type(_mime, _ext, strict=False)


def extension_for_type(file_type: str) -> str:
    """A file extension for a type as clients name it: an extension (`pdf`) stays as it is; a
    MIME type (`image/svg+xml`) or its subtype alone (`svg+xml`, as adp-chat-client sends
    it) becomes its usual extension (`svg`). Anything else is returned lower-cased."""
    value = file_type.strip().lower().lstrip(".")
    if value.isascii() and value.isalnum():
        return value
    candidates = [value] if "/" in value else [f"{major}/{value}" for major in ("image", "application", "text")]
    for mime in candidates:
        extension = _MIME_TYPES.guess_extension(mime, strict=False)
        if extension:
            return extension.lstrip(".")
    return value


def parse_file(path: Path, name: str | None = None) -> ParsedDocument:
    return parse_bytes(name or path.name, path.read_bytes())


def decode_text(data: bytes) -> str:
    """Text files in UTF-8 (with or without BOM), UTF-16 with BOM, or GB18030 (common for Chinese)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("utf-8", errors="replace")


# --- plain text and Markdown ---------------------------------------------------------------


def parse_txt(data: bytes) -> ParsedDocument:
    return ParsedDocument([Section(decode_text(data).replace("\r\n", "\n"))])


def markdown_sections(markdown: str) -> list[Section]:
    """Splits Markdown at its headings (found by markdown-it), keeping each part's heading path."""
    from markdown_it import MarkdownIt

    lines = markdown.replace("\r\n", "\n").split("\n")
    tokens = MarkdownIt("commonmark").parse(markdown)
    headings: list[tuple[int, int, int, str]] = []  # (start line, end line, level, text)
    for i, token in enumerate(tokens):
        if token.type == "heading_open" and token.map:
            level = int(token.tag[1])
            text = tokens[i + 1].content.strip() if i + 1 < len(tokens) else ""
            headings.append((token.map[0], token.map[1], level, text))
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    cursor = 0
    for start, end, level, text in headings:
        body = "\n".join(lines[cursor:start]).strip("\n")
        if body.strip():
            sections.append(Section(body, headings=tuple(t for _, t in path)))
        path = [(lv, t) for lv, t in path if lv < level] + [(level, text)]
        cursor = end
    body = "\n".join(lines[cursor:]).strip("\n")
    if body.strip():
        sections.append(Section(body, headings=tuple(t for _, t in path)))
    return sections


def parse_markdown(data: bytes) -> ParsedDocument:
    text = decode_text(data)
    sections = markdown_sections(text)
    title = next((s.headings[0] for s in sections if s.headings), "")
    return ParsedDocument(sections, title)


# --- HTML -----------------------------------------------------------------------------------


def parse_html(data: bytes) -> ParsedDocument:
    from bs4 import BeautifulSoup
    from markdownify import markdownify

    soup = BeautifulSoup(data, "html.parser")
    for tag in soup(["script", "style", "noscript", "template"]):
        tag.decompose()
    title = soup.title.get_text(strip=True) if soup.title else ""
    body = soup.body or soup
    markdown = markdownify(str(body), heading_style="ATX", strip=["img"])
    return ParsedDocument(markdown_sections(markdown), title)


# --- SVG: XML whose text is in <title>, <desc> and <text> ------------------------------------


SVG_TEXT = ("title", "desc", "text")


def parse_svg(data: bytes) -> ParsedDocument:
    """The text an SVG shows or describes. html.parser never resolves entities or DTDs, so a
    hostile file cannot reach other files or blow up in memory."""
    from bs4 import BeautifulSoup, XMLParsedAsHTMLWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XMLParsedAsHTMLWarning)  # on purpose: see above
        soup = BeautifulSoup(decode_text(data), "html.parser")
    for tag in soup(["script", "style"]):
        tag.decompose()
    lines = [" ".join(element.get_text(" ").split()) for element in soup.find_all(SVG_TEXT)]
    title = soup.find("title")
    return ParsedDocument([Section("\n".join(line for line in lines if line))], title.get_text(strip=True) if title else "")


# --- PDF ------------------------------------------------------------------------------------


def parse_pdf(data: bytes) -> ParsedDocument:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    if reader.is_encrypted:
        try:
            reader.decrypt("")
        except Exception as exc:
            raise ParseError("the PDF is encrypted") from exc
    sections = [Section((page.extract_text() or "").strip(), page=number) for number, page in enumerate(reader.pages, 1)]
    title = ""
    if reader.metadata and reader.metadata.title:
        title = str(reader.metadata.title)
    return ParsedDocument(sections, title)


# --- DOCX -----------------------------------------------------------------------------------


def _heading_level(style_name: str) -> int | None:
    name = style_name.lower()
    if name == "title":
        return 0
    if name.startswith("heading"):
        digits = name.removeprefix("heading").strip()
        return int(digits) if digits.isascii() and digits.isdigit() else 1
    return None


def parse_docx(data: bytes) -> ParsedDocument:
    from docx import Document
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    document = Document(io.BytesIO(data))
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    buffer: list[str] = []

    def flush() -> None:
        if buffer:
            sections.append(Section("\n".join(buffer), headings=tuple(t for _, t in path)))
            buffer.clear()

    for block in document.iter_inner_content():
        if isinstance(block, Paragraph):
            text = block.text.strip()
            level = _heading_level(block.style.name if block.style is not None else "")
            if level is not None and text:
                flush()
                path = [(lv, t) for lv, t in path if lv < level] + [(level, text)]
            elif text:
                buffer.append(text)
        elif isinstance(block, Table):
            for row in block.rows:
                cells: list[str] = []
                for cell in row.cells:
                    value = cell.text.strip()
                    if value and (not cells or cells[-1] != value):  # merged cells repeat
                        cells.append(value)
                if cells:
                    buffer.append(" | ".join(cells))
    flush()
    title = document.core_properties.title or next((t for lv, t in path if lv == 0), "")
    return ParsedDocument(sections, title)


# --- PPTX -----------------------------------------------------------------------------------


def parse_pptx(data: bytes) -> ParsedDocument:
    """One section per slide: its shapes' text (tables row by row), then its notes."""
    from pptx import Presentation

    presentation = Presentation(io.BytesIO(data))
    sections = []
    for number, slide in enumerate(presentation.slides, 1):
        lines: list[str] = []
        for shape in slide.shapes:
            if shape.has_text_frame:
                lines.extend(p.strip() for p in shape.text_frame.text.split("\n") if p.strip())
            elif getattr(shape, "has_table", False):  # graphic frames only have the attribute
                for row in shape.table.rows:
                    cells = [cell.text.strip() for cell in row.cells if cell.text.strip()]
                    if cells:
                        lines.append(" | ".join(cells))
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            notes = slide.notes_slide.notes_text_frame.text.strip()
            if notes:
                lines.append(notes)
        sections.append(Section("\n".join(lines), page=number))
    return ParsedDocument(sections, presentation.core_properties.title or "")


# --- tables: XLSX, XLS and CSV --------------------------------------------------------------


def _table_rows(rows: Iterable[Iterable[object]]) -> list[str]:
    """Rows as `header: value; ...` lines so that each line stands on its own in a segment."""
    lines: list[str] = []
    header: list[str] | None = None
    for row in rows:
        values = ["" if v is None else str(v).strip() for v in row]
        if not any(values):
            continue
        if header is None:
            header = values
            lines.append(" | ".join(v for v in values if v))
            continue
        pairs = [f"{header[i]}: {v}" if i < len(header) and header[i] else v for i, v in enumerate(values) if v]
        lines.append("; ".join(pairs))
    return lines


def parse_xlsx(data: bytes) -> ParsedDocument:
    from openpyxl import load_workbook

    workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    try:
        sections = [
            Section("\n".join(_table_rows(sheet.iter_rows(values_only=True))), sheet=sheet.title)
            for sheet in workbook.worksheets
        ]
    finally:
        workbook.close()
    return ParsedDocument(sections)


def parse_xls(data: bytes) -> ParsedDocument:
    """The old binary Excel format (xlrd reads only that one)."""
    import xlrd

    workbook = xlrd.open_workbook(file_contents=data, on_demand=True)
    try:
        sections = [
            Section("\n".join(_table_rows(sheet.row_values(i) for i in range(sheet.nrows))), sheet=sheet.name)
            for sheet in workbook.sheets()
        ]
    finally:
        workbook.release_resources()
    return ParsedDocument(sections)


def parse_csv(data: bytes) -> ParsedDocument:
    text = decode_text(data)
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    rows = csv.reader(io.StringIO(text), dialect)
    return ParsedDocument([Section("\n".join(_table_rows(rows)))])


register_parser(["txt", "text", "json"], parse_txt)
register_parser(["md", "markdown"], parse_markdown)
register_parser(["html", "htm"], parse_html)
register_parser(["pdf"], parse_pdf)
register_parser(["docx"], parse_docx)
register_parser(["pptx"], parse_pptx)
register_parser(["xlsx"], parse_xlsx)
register_parser(["xls"], parse_xls)
register_parser(["svg"], parse_svg)
register_parser(["csv"], parse_csv)

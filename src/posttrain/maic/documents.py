"""Teaching documents in: PDF, PPTX, Markdown and plain text read into one `Document` shape.

MAIC-UI turns a lesson's source material into an interactive page, so everything downstream
(the analyser, the page generator, the studio) sees a document as an ordered list of
`Section`s — a PDF page, a PPTX slide, a Markdown heading's block, a text paragraph — each with
a title, body text, speaker notes and images (PNG bytes, ready to show or hand to a vision
model).

Library choices, and why:

- PDF text comes from **pypdf** (pure Python, BSD): no native build, and it tells an encrypted
  file (`is_encrypted`, a failed empty-password `decrypt`) apart from a malformed one, so each
  gets its own error. PDF page images come from **pypdfium2** (Apache-2.0/BSD bindings to
  PDFium, the renderer Chrome uses) through PIL. PyMuPDF would do both but is AGPL-licensed,
  which posttrain (Apache-2.0) cannot ship.
- PPTX is read with **python-pptx** (MIT): slide title placeholders, every text frame and
  table (groups included), the notes slide, and picture shapes' blobs; pictures in other
  formats are converted to PNG with PIL (ones PIL cannot read, like WMF/EMF, are left out).
- Markdown is split at ATX (`#`) and setext (`===`/`---`) headings outside fenced code;
  bodies are kept as written (the analyser reads `**term**` emphasis). Images a section
  shows (`![alt](figure.png)`) are loaded as PNG when they are files in the document's folder
  or below it — never URLs or other local files.
- Plain text is split into paragraph blocks at blank lines; a block that is one short line
  without closing punctuation is a heading, titling the blocks after it.

Page renders are bounded so a 300-page PDF does not cost minutes and hundreds of megabytes:
only the first `MAX_RENDERED_PAGES` (20) pages are rendered, each at the scale that makes it
`RENDER_WIDTH_PX` (1000) pixels wide; later pages keep their text and have no image.

Every failure to read a file is an `InputError` naming it: encrypted PDFs (the word
"encrypted" in the message), truncated or not-a-PDF files, broken PPTX packages (a
password-protected PPTX is an OLE container, named as such), non-UTF-8 text, an unknown suffix
(listing the supported ones), and a document with no text at all.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from posttrain.errors import InputError, not_utf8

MAX_RENDERED_PAGES = 20
"""PDF pages rendered to PNG (the first ones); later pages have text only."""
RENDER_WIDTH_PX = 1000
"""Width of a rendered PDF page in pixels (its height follows the page's aspect ratio)."""

SUFFIXES: dict[str, str] = {
    ".pdf": "pdf",
    ".pptx": "pptx",
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".text": "text",
}
"""File suffix (lower case) -> document kind."""

_PLACEHOLDER_TITLES = {"", "untitled", "untitled document", "microsoft word - document1"}
"""PDF metadata titles that tools write by default and that name nothing."""
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # encrypted Office files and legacy .ppt


@dataclass
class Section:
    """One unit of a document: a PDF page, a slide, a Markdown heading's block, a paragraph."""

    title: str | None
    text: str
    notes: str = ""
    images: list[bytes] = field(default_factory=list)
    """PNG bytes: a PDF page's render, a slide's pictures."""
    page: int | None = None
    """1-based page or slide number (None for Markdown and text)."""


@dataclass
class Document:
    path: str
    kind: str
    """"pdf" | "pptx" | "markdown" | "text"."""
    title: str
    sections: list[Section]

    @property
    def text(self) -> str:
        """All sections' titles, text and notes, in order, newline-joined (empty parts left out)."""
        parts: list[str] = []
        for section in self.sections:
            parts.extend(p for p in (section.title, section.text, section.notes) if p)
        return "\n".join(parts)

    @property
    def content_hash(self) -> str:
        """sha256 hex of the kind, the text and every image: a cache key that changes when
        anything a page is built from changes, and not when the file is merely moved."""
        digest = hashlib.sha256()
        digest.update(self.kind.encode() + b"\0" + self.text.encode("utf-8"))
        for section in self.sections:
            for image in section.images:
                digest.update(b"\0img" + len(image).to_bytes(8, "big") + image)
        return digest.hexdigest()


def load_document(path: str | Path) -> Document:
    """Read a PDF, PPTX, Markdown or text file by its suffix; `InputError` naming the file if
    it is missing, unreadable, encrypted, of an unknown kind or has no text."""
    path = Path(path)
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        supported = ", ".join(sorted(SUFFIXES))
        raise InputError(
            f"unsupported document type {path.suffix or '(none)'!r}; supported: {supported}", path
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", path) from exc
    reader = {"pdf": _read_pdf, "pptx": _read_pptx, "markdown": _read_markdown, "text": _read_text}
    title, sections = reader[kind](path, data)
    if not any((s.title or "").strip() or s.text.strip() or s.notes.strip() for s in sections):
        hint = " (a scanned PDF needs OCR, which is not supported)" if kind == "pdf" else ""
        raise InputError(f"the document has no text{hint}", path)
    return Document(path=str(path), kind=kind, title=title or path.stem, sections=sections)


# --------------------------------------------------------------------------- PDF


def _read_pdf(path: Path, data: bytes) -> tuple[str | None, list[Section]]:
    import struct
    import zlib

    import pypdf
    from pypdf.errors import PyPdfError

    if b"%PDF-" not in data[:1024]:
        raise InputError("not a PDF file (no %PDF- header)", path)
    if b"%%EOF" not in data[-2048:]:
        # pypdf would often "recover" a cut-off file and silently drop pages.
        raise InputError("truncated PDF (no %%EOF marker at the end)", path)
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise InputError("the PDF is encrypted (password-protected); decrypt it first", path)
        texts = [(page.extract_text() or "") for page in reader.pages]
        meta_title = (reader.metadata.title if reader.metadata else None) or None
    except InputError:
        raise
    except (
        PyPdfError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        IndexError,
        OSError,
        RecursionError,
        zlib.error,
        struct.error,
    ) as exc:  # what pypdf's parser raises on damaged files: all mean "malformed"
        raise InputError(f"malformed PDF: {exc}", path) from exc
    images = _render_pdf_pages(path, data, min(len(texts), MAX_RENDERED_PAGES))
    sections = []
    for number, raw in enumerate(texts, start=1):
        lines = [line.rstrip() for line in raw.replace("\r\n", "\n").split("\n")]
        while lines and not lines[0].strip():
            lines.pop(0)
        title = lines[0].strip() if lines else None
        body = "\n".join(lines[1:]).strip()
        page_images = [images[number - 1]] if number <= len(images) else []
        sections.append(Section(title=title or None, text=body, images=page_images, page=number))
    first_title = next((s.title for s in sections if s.title), None)
    meta_title = str(meta_title or "").strip()
    if meta_title.lower() in _PLACEHOLDER_TITLES:
        meta_title = ""
    return meta_title or first_title, sections


def _render_pdf_pages(path: Path, data: bytes, count: int) -> list[bytes]:
    """PNG renders of the first `count` pages, each `RENDER_WIDTH_PX` wide."""
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        raise InputError(f"malformed PDF (the renderer cannot open it: {exc})", path) from exc
    try:
        renders = []
        for index in range(count):
            page = pdf[index]
            try:
                width = page.get_width() or RENDER_WIDTH_PX
                bitmap = page.render(scale=RENDER_WIDTH_PX / width)
                renders.append(_png(bitmap.to_pil()))
            finally:
                page.close()
        return renders
    finally:
        pdf.close()


def _png(image) -> bytes:
    buffer = io.BytesIO()
    if image.mode not in ("RGB", "RGBA", "L", "LA", "P"):
        image = image.convert("RGBA")
    image.save(buffer, format="PNG")
    return buffer.getvalue()


# --------------------------------------------------------------------------- PPTX


def _read_pptx(path: Path, data: bytes) -> tuple[str | None, list[Section]]:
    import zipfile

    from pptx import Presentation
    from pptx.exc import PackageNotFoundError

    if data.startswith(_OLE_MAGIC):
        raise InputError(
            "not a PPTX package: an OLE container, i.e. an encrypted (password-protected) "
            "presentation or a legacy .ppt file; save it as an unencrypted .pptx",
            path,
        )
    try:
        presentation = Presentation(io.BytesIO(data))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise InputError(f"malformed PPTX: {exc}", path) from exc
    sections = []
    try:
        for number, slide in enumerate(presentation.slides, start=1):
            sections.append(_read_slide(slide, number))
        core_title = (presentation.core_properties.title or "").strip()
    except (KeyError, ValueError, AttributeError, zipfile.BadZipFile) as exc:
        raise InputError(f"malformed PPTX: {exc}", path) from exc
    first_title = next((s.title for s in sections if s.title), None)
    return core_title or first_title, sections


def _read_slide(slide, number: int) -> Section:
    title_shape = slide.shapes.title
    title = title_shape.text_frame.text.strip() if title_shape is not None else ""
    texts: list[str] = []
    images: list[bytes] = []
    for shape in _shapes(slide.shapes):
        if title_shape is not None and shape.shape_id == title_shape.shape_id:
            continue
        if getattr(shape, "has_text_frame", False) and shape.text_frame.text.strip():
            texts.append(shape.text_frame.text.strip())
        if getattr(shape, "has_table", False):
            for row in shape.table.rows:
                texts.append(" | ".join(cell.text.strip() for cell in row.cells))
        image = _picture_png(shape)
        if image is not None:
            images.append(image)
    if not title and texts:  # no title placeholder: the first line of the first text is one
        first, _, rest = texts[0].partition("\n")
        title, texts[0] = first.strip(), rest.strip()
    notes = ""
    if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
        notes = slide.notes_slide.notes_text_frame.text.strip()
    body = "\n".join(t for t in texts if t)
    return Section(title=title or None, text=body, notes=notes, images=images, page=number)


def _shapes(shapes):
    """Every shape, group members included, in document order."""
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    for shape in shapes:
        if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
            yield from _shapes(shape.shapes)
        else:
            yield shape


def _picture_png(shape) -> bytes | None:
    """A picture shape's image as PNG bytes (None: not a picture, or PIL cannot read it)."""
    from PIL import Image, UnidentifiedImageError

    try:
        image = shape.image  # pictures (and picture placeholders holding one) have .image
    except (AttributeError, ValueError, KeyError):
        return None
    blob = image.blob
    if blob.startswith(b"\x89PNG\r\n\x1a\n"):
        return blob
    try:
        with Image.open(io.BytesIO(blob)) as opened:
            return _png(opened)
    except (UnidentifiedImageError, OSError, ValueError):
        return None


# --------------------------------------------------------------------------- Markdown and text


def _decode(path: Path, data: bytes) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise not_utf8(path, data, exc) from exc
    return text.replace("\r\n", "\n").replace("\r", "\n")


_ATX = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)\s*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")


def _read_markdown(path: Path, data: bytes) -> tuple[str | None, list[Section]]:
    lines = _decode(path, data).split("\n")
    sections: list[Section] = []
    title: str | None = None
    body: list[str] = []
    doc_title: str | None = None
    in_fence = False

    def close() -> None:
        text = "\n".join(body).strip()
        if title is not None or text:
            sections.append(Section(title=title, text=text, images=_local_images(path, text)))

    i = 0
    while i < len(lines):
        line = lines[i]
        if _FENCE.match(line):
            in_fence = not in_fence
        heading = None if in_fence else _ATX.match(line)
        setext = (
            not in_fence
            and i + 1 < len(lines)
            and line.strip()
            and not line.lstrip().startswith(("-", "*", "+", ">", "|"))
            and _SETEXT.match(lines[i + 1])
            and (not body or not body[-1].strip())  # a setext heading starts a paragraph
        )
        if heading or setext:
            close()
            level = len(heading.group(1)) if heading else (1 if "=" in lines[i + 1] else 2)
            title = (heading.group(2) if heading else line).strip() or None
            if level == 1 and doc_title is None:
                doc_title = title
            body = []
            i += 1 if heading else 2
            continue
        body.append(line)
        i += 1
    close()
    return doc_title or next((s.title for s in sections if s.title), None), sections


_IMAGE_LINK = re.compile(r"!\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+[\"'][^)]*)?\)")
MAX_IMAGE_BYTES = 10 * 1024 * 1024
"""A Markdown image file larger than this is left out."""


def _local_images(path: Path, text: str) -> list[bytes]:
    """PNG bytes of the images a Markdown body shows (`![alt](figure.png)`) that are files in
    the document's folder or below it. URLs, files elsewhere (a page must not pull in
    arbitrary local files), missing, oversized and unreadable images are left out."""
    from PIL import Image, UnidentifiedImageError

    folder = path.resolve().parent
    images = []
    for target in _IMAGE_LINK.findall(text):
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target):  # http:, data:, file: ...
            continue
        file = (folder / target).resolve()
        if not file.is_relative_to(folder) or not file.is_file():
            continue
        if file.stat().st_size > MAX_IMAGE_BYTES:
            continue
        try:
            with Image.open(file) as opened:
                images.append(_png(opened))
        except (UnidentifiedImageError, OSError, ValueError):
            continue
    return images


_SENTENCE_END = (".", "!", "?", ":", ";", ",")
HEADING_MAX_CHARS = 80
"""A text file's one-line block at most this long, without closing punctuation, is a heading."""


def _read_text(path: Path, data: bytes) -> tuple[str | None, list[Section]]:
    blocks = [b.strip() for b in re.split(r"\n\s*\n", _decode(path, data)) if b.strip()]
    sections: list[Section] = []
    for block in blocks:
        is_heading = (
            "\n" not in block
            and len(block) <= HEADING_MAX_CHARS
            and not block.endswith(_SENTENCE_END)
        )
        if is_heading:
            sections.append(Section(title=block, text=""))
        elif sections and sections[-1].title is not None:
            # Paragraphs after a heading belong to it, until the next heading.
            sections[-1].text = f"{sections[-1].text}\n\n{block}".strip()
        else:
            sections.append(Section(title=None, text=block))  # before any heading: its own
    return next((s.title for s in sections if s.title), None), sections

"""Reading teaching documents: PDF (text + page renders), PPTX, Markdown, text, and the errors."""

from __future__ import annotations

import io
import shutil
import struct
from pathlib import Path

import pytest
from PIL import Image

from posttrain.errors import InputError
from posttrain.maic import documents
from posttrain.maic.documents import Document, Section, load_document

DATA = Path(__file__).resolve().parents[1] / "data" / "maic"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(PNG_MAGIC)
    return struct.unpack(">II", data[16:24])  # the IHDR chunk's width and height


def write_lesson_pdf(path: Path) -> Path:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(path), pagesize=A4)
    pdf.setTitle("Forces lesson")
    lines = [
        "Newton's Second Law",
        "Force is a push or pull acting on an object.",
        "1. Measure the mass of the cart.",
        "2. Pull the cart with a constant force.",
        "3. Compute the acceleration.",
    ]
    for i, line in enumerate(lines):
        pdf.drawString(72, 760 - 20 * i, line)
    pdf.showPage()
    pdf.drawString(72, 760, "Summary")
    pdf.drawString(72, 740, "Acceleration grows with the net force.")
    pdf.showPage()
    pdf.save()
    return path


@pytest.fixture(scope="module")
def lesson_pdf(tmp_path_factory) -> Path:
    return write_lesson_pdf(tmp_path_factory.mktemp("pdf") / "lesson.pdf")


def test_pdf_pages_become_sections_with_text_and_renders(lesson_pdf):
    doc = load_document(lesson_pdf)
    assert (doc.kind, doc.title, doc.path) == ("pdf", "Forces lesson", str(lesson_pdf))
    assert [s.page for s in doc.sections] == [1, 2]
    assert [s.title for s in doc.sections] == ["Newton's Second Law", "Summary"]
    first = doc.sections[0]
    assert first.text.splitlines() == [
        "Force is a push or pull acting on an object.",
        "1. Measure the mass of the cart.",
        "2. Pull the cart with a constant force.",
        "3. Compute the acceleration.",
    ]
    for section in doc.sections:
        assert len(section.images) == 1
        width, height = png_size(section.images[0])
        # A4 is 595.28 x 841.89 pt: rendered 1000 px wide, ~1414 px high.
        assert width == 1000 and abs(height - 1414) <= 1
    # The render shows ink: not a blank page.
    with Image.open(io.BytesIO(first.images[0])) as image:
        assert image.convert("L").getextrema()[0] < 100


def test_pdf_renders_only_the_first_pages(lesson_pdf, monkeypatch):
    monkeypatch.setattr(documents, "MAX_RENDERED_PAGES", 1)
    doc = load_document(lesson_pdf)
    assert [len(s.images) for s in doc.sections] == [1, 0]
    assert doc.sections[1].text == "Acceleration grows with the net force."


def test_encrypted_pdf_is_an_error_naming_the_file(lesson_pdf, tmp_path):
    import pypdf

    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(lesson_pdf))
    writer.encrypt("pw")
    locked = tmp_path / "locked.pdf"
    with open(locked, "wb") as out:
        writer.write(out)
    with pytest.raises(InputError, match="encrypted") as caught:
        load_document(locked)
    assert caught.value.path == str(locked) and str(locked) in str(caught.value)


def test_pdf_with_only_an_owner_password_is_read(lesson_pdf, tmp_path):
    # Anyone may open such a file (the empty user password); only editing is restricted.
    import pypdf

    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(lesson_pdf))
    writer.encrypt(user_password="", owner_password="owner")
    restricted = tmp_path / "restricted.pdf"
    with open(restricted, "wb") as out:
        writer.write(out)
    doc = load_document(restricted)
    assert doc.sections[0].title == "Newton's Second Law" and len(doc.sections[0].images) == 1


def test_truncated_and_fake_pdfs_are_errors_naming_the_file(lesson_pdf, tmp_path):
    data = lesson_pdf.read_bytes()
    truncated = tmp_path / "cut.pdf"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated") as caught:
        load_document(truncated)
    assert caught.value.path == str(truncated)
    fake = tmp_path / "fake.pdf"
    fake.write_bytes(b"hello, I am not a PDF\n")
    with pytest.raises(InputError, match="not a PDF") as caught:
        load_document(fake)
    assert caught.value.path == str(fake)
    # A header and an EOF marker around garbage: pypdf's own error, still naming the file.
    garbage = tmp_path / "garbage.pdf"
    garbage.write_bytes(b"%PDF-1.4\n" + b"\x00garbage" * 50 + b"\n%%EOF\n")
    with pytest.raises(InputError, match="PDF") as caught:
        load_document(garbage)
    assert caught.value.path == str(garbage)


def test_scanned_pdf_without_text_is_an_error(tmp_path):
    from reportlab.pdfgen import canvas

    path = tmp_path / "scan.pdf"
    pdf = canvas.Canvas(str(path))
    pdf.rect(100, 100, 200, 200, fill=1)
    pdf.showPage()
    pdf.save()
    with pytest.raises(InputError, match="no text.*OCR"):
        load_document(path)


def test_pdf_placeholder_metadata_title_gives_way_to_the_first_line(tmp_path):
    from reportlab.pdfgen import canvas

    path = tmp_path / "untitled.pdf"
    pdf = canvas.Canvas(str(path))  # reportlab's default /Title is "untitled"
    pdf.drawString(72, 760, "Waves and Sound")
    pdf.showPage()
    pdf.save()
    assert load_document(path).title == "Waves and Sound"


# --------------------------------------------------------------------------- PPTX


def image_bytes(fmt: str, size=(40, 30), colour=(200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format=fmt)
    return buffer.getvalue()


def write_deck(path: Path) -> tuple[Path, bytes]:
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    deck.core_properties.title = ""
    slide = deck.slides.add_slide(deck.slide_layouts[1])  # title and content
    slide.shapes.title.text = "Kinetic energy"
    slide.placeholders[1].text_frame.text = "Kinetic energy is the energy of motion."
    png = image_bytes("PNG")
    slide.shapes.add_picture(io.BytesIO(png), Inches(1), Inches(4))
    slide.shapes.add_picture(io.BytesIO(image_bytes("JPEG", (64, 48))), Inches(4), Inches(4))
    slide.notes_slide.notes_text_frame.text = "Ask who has ridden a bicycle downhill."
    blank = deck.slides.add_slide(deck.slide_layouts[6])  # no title placeholder
    box = blank.shapes.add_textbox(Inches(1), Inches(1), Inches(5), Inches(2))
    box.text_frame.text = "Formula\nE = m v^2 / 2"
    deck.save(str(path))
    return path, png


def test_pptx_slides_give_title_text_notes_and_pictures(tmp_path):
    path, png = write_deck(tmp_path / "deck.pptx")
    doc = load_document(path)
    assert (doc.kind, doc.title) == ("pptx", "Kinetic energy")  # no core title: slide 1's
    first, second = doc.sections
    assert (first.page, first.title) == (1, "Kinetic energy")
    assert first.text == "Kinetic energy is the energy of motion."
    assert first.notes == "Ask who has ridden a bicycle downhill."
    assert len(first.images) == 2
    assert first.images[0] == png  # PNG kept byte for byte
    assert png_size(first.images[1]) == (64, 48)  # the JPEG converted to PNG
    # A slide without a title placeholder: its first text line is the title.
    assert (second.page, second.title, second.text, second.notes) == (
        2,
        "Formula",
        "E = m v^2 / 2",
        "",
    )
    assert doc.text.splitlines() == [
        "Kinetic energy",
        "Kinetic energy is the energy of motion.",
        "Ask who has ridden a bicycle downhill.",
        "Formula",
        "E = m v^2 / 2",
    ]


def test_broken_and_encrypted_pptx_are_errors_naming_the_file(tmp_path):
    broken = tmp_path / "broken.pptx"
    broken.write_bytes(b"PK\x03\x04 this is not really a zip")
    with pytest.raises(InputError, match="malformed PPTX") as caught:
        load_document(broken)
    assert caught.value.path == str(broken)
    # Office writes password-protected files as OLE compound documents.
    locked = tmp_path / "locked.pptx"
    locked.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 512)
    with pytest.raises(InputError, match="encrypted") as caught:
        load_document(locked)
    assert caught.value.path == str(locked)


# --------------------------------------------------------------------------- Markdown and text


def test_markdown_is_split_at_headings_outside_code(tmp_path):
    doc = load_document(DATA / "newtons_laws.md")
    assert (doc.kind, doc.title) == ("markdown", "Newton's Laws of Motion")
    assert [s.title for s in doc.sections] == [
        "Newton's Laws of Motion",
        "Learning objectives",
        "Prerequisites",
        "Force and mass",
        "Newton's second law",
        "Measuring acceleration",
    ]
    last = doc.sections[-1]
    assert "# a = F / m" in last.text  # a comment inside a code fence is no heading
    assert last.text.startswith("To measure the acceleration of a cart:")
    assert all(s.page is None and s.images == [] for s in doc.sections)
    setext = tmp_path / "setext.markdown"
    setext.write_text(
        "Intro line.\n\nWaves\n=====\nA wave carries energy.\n\nSound\n-----\nLoud.\n"
    )
    doc = load_document(setext)
    assert [(s.title, s.text) for s in doc.sections] == [
        (None, "Intro line."),
        ("Waves", "A wave carries energy."),
        ("Sound", "Loud."),
    ]
    assert doc.title == "Waves"


def test_markdown_loads_local_images_only(tmp_path):
    (tmp_path / "figs").mkdir()
    (tmp_path / "figs" / "cart.jpg").write_bytes(image_bytes("JPEG", (32, 16)))
    (tmp_path / "broken.png").write_bytes(b"not an image")
    outside = tmp_path.parent / f"{tmp_path.name}-secret.png"
    outside.write_bytes(image_bytes("PNG"))
    lesson = tmp_path / "lesson.md"
    lesson.write_text(
        "# Carts\n"
        '![a cart](figs/cart.jpg "A cart")\n'
        f"![outside](../{outside.name}) ![remote](https://example.org/x.png)\n"
        "![missing](nope.png) ![broken](broken.png)\n"
    )
    (section,) = load_document(lesson).sections
    assert len(section.images) == 1 and png_size(section.images[0]) == (32, 16)


def test_text_is_split_into_paragraph_blocks_under_short_headings(tmp_path):
    doc = load_document(DATA / "photosynthesis.txt")
    assert (doc.kind, doc.title) == ("text", "Photosynthesis")
    assert [s.title for s in doc.sections] == ["Photosynthesis", "How plants make food"]
    assert doc.sections[0].text.count("\n\n") == 1  # both paragraphs under the heading
    plain = tmp_path / "plain.txt"
    plain.write_text("A sentence about atoms.\n\nAnother one, about ions.\n")
    doc = load_document(plain)
    assert [(s.title, s.text) for s in doc.sections] == [
        (None, "A sentence about atoms."),
        (None, "Another one, about ions."),
    ]
    assert doc.title == "plain"  # no heading: the file's stem


def test_unknown_empty_and_non_utf8_files_are_errors(tmp_path):
    odd = tmp_path / "notes.docx"
    odd.write_bytes(b"x")
    with pytest.raises(InputError, match=r"unsupported .*\.md.*\.pdf.*\.pptx.*\.txt"):
        load_document(odd)
    empty = tmp_path / "empty.md"
    empty.write_text("\n\n   \n")
    with pytest.raises(InputError, match="no text") as caught:
        load_document(empty)
    assert caught.value.path == str(empty)
    latin = tmp_path / "latin.txt"
    latin.write_bytes(b"line one\ncaf\xe9\n")
    with pytest.raises(InputError, match="UTF-8") as caught:
        load_document(latin)
    assert caught.value.line == 2
    with pytest.raises(InputError, match="cannot read"):
        load_document(tmp_path / "missing.txt")


def test_content_hash_follows_content_not_location(tmp_path):
    copy = tmp_path / "copy.md"
    shutil.copy(DATA / "newtons_laws.md", copy)
    original, moved = load_document(DATA / "newtons_laws.md"), load_document(copy)
    assert original.content_hash == moved.content_hash
    assert len(original.content_hash) == 64
    doc = Document("x.pdf", "pdf", "t", [Section("T", "body", images=[b"one"])])
    other = Document("x.pdf", "pdf", "t", [Section("T", "body", images=[b"two"])])
    as_text = Document("x.pdf", "text", "t", [Section("T", "body", images=[b"one"])])
    assert len({doc.content_hash, other.content_hash, as_text.content_hash}) == 3

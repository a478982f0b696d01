"""The courseware studio as a teacher uses it: `posttrain studio` as its own process, driven
through its API with httpx and through its page in Debian's chromium with Playwright — upload a
PDF and a PPTX made here, edit the analysis, generate (checked in the browser), click an
element in the preview, edit it, undo, redo, compare — plus the token, bad uploads, a failed
edit that changes nothing, and a preview that cannot reach the studio's API."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from browser_gate import CHROMIUM, require_browser  # beside this file

require_browser("the studio tests")
from playwright import sync_api  # noqa: E402


def write_pdf(path: Path) -> Path:
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(path))
    pdf.setTitle("Forces lesson")
    lines = [
        "Forces and Motion",
        "Force is a push or pull acting on an object.",
        "Mass is the amount of matter in an object.",
        "1. Measure the mass of the cart.",
        "2. Pull the cart with a constant force.",
        "3. Compute the acceleration.",
    ]
    for i, line in enumerate(lines):
        pdf.drawString(72, 760 - 20 * i, line)
    pdf.showPage()
    pdf.save()
    return path


def write_pptx(path: Path) -> Path:
    from pptx import Presentation

    deck = Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[1])
    slide.shapes.title.text = "Photosynthesis"
    slide.placeholders[1].text = (
        "Photosynthesis is the process plants use to make glucose from light.\n"
        "Chlorophyll is the green pigment that absorbs light."
    )
    slide.notes_slide.notes_text_frame.text = "Ask the class where plants get their energy."
    deck.save(str(path))
    return path


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    root = tmp_path_factory.mktemp("studio")
    log = root / "studio.log"  # a file, not a pipe: a chatty server never blocks on it
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "posttrain", "studio", "--root", str(root / "projects")],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        match = None
        for _ in range(600):
            match = re.search(r"(http://[\d.:]+)/\?token=(\S+)", log.read_text())
            if match or process.poll() is not None:
                break
            time.sleep(0.05)
        assert match, log.read_text()
        url, token = match[1], match[2]
        for _ in range(200):
            try:
                if httpx.get(url + "/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        client = httpx.Client(
            base_url=url, headers={"authorization": f"Bearer {token}"}, timeout=120
        )
        yield {"url": url, "token": token, "client": client, "root": root, "log": log}
        client.close()
    finally:
        process.terminate()
        process.wait(10)


def test_the_api_wants_its_token_and_names_bad_uploads(studio, tmp_path):
    url, client = studio["url"], studio["client"]
    assert httpx.get(url + "/api/projects").status_code == 401
    wrong = {"authorization": "Bearer x"}
    assert httpx.get(url + "/api/projects", headers=wrong).status_code == 401
    before = len(client.get("/api/projects").json()["projects"])
    broken = client.post("/api/projects", params={"filename": "notes.pdf"}, content=b"%PDF-1.4 no")
    assert broken.status_code == 400 and "notes.pdf" in broken.json()["error"]
    unknown = client.post("/api/projects", params={"filename": "slides.key"}, content=b"abc")
    assert unknown.status_code == 400 and "slides.key" in unknown.json()["error"]
    assert client.get("/api/projects/999").status_code == 404
    assert len(client.get("/api/projects").json()["projects"]) == before  # nothing left behind


def test_a_failed_edit_changes_nothing_and_the_preview_is_fenced(studio, tmp_path):
    client = studio["client"]
    pdf = write_pdf(tmp_path / "forces.pdf").read_bytes()
    project = client.post("/api/projects", params={"filename": "forces.pdf"}, content=pdf).json()
    pid = project["id"]
    edited = {**project["analysis"], "key_concepts": 3}
    bad = client.put(f"/api/projects/{pid}/analysis", json=edited)
    assert bad.status_code == 400 and "key_concepts" in bad.json()["error"]
    version = client.post(f"/api/projects/{pid}/generate", json={"mode": "fast"}).json()
    assert version["number"] == 1 and version["detail"]["source"] == "templated"
    assert version["detail"]["findings"]["ok"], version["detail"]["findings"]
    html = client.get(f"/api/projects/{pid}/versions/1").json()["html"]
    line = next(i for i, text in enumerate(html.splitlines(), 1) if "<h1" in text)
    picked = {"selector": "h1", "data_src": f"L{line}-L{line}", "tag": "h1"}
    # an instruction the scripted editor cannot read: no diff applies, no version is made
    failed = client.post(
        f"/api/projects/{pid}/edit", json={"picked": picked, "instruction": "dance a jig"}
    )
    assert failed.status_code in (200, 400, 409)
    assert [v["number"] for v in client.get(f"/api/projects/{pid}").json()["versions"]] == [1]
    ticket = client.post(f"/api/projects/{pid}/preview/1").json()["url"]
    served = httpx.get(studio["url"] + ticket)
    assert served.status_code == 200 and "maic-pick" in served.text
    assert "sandbox allow-scripts" in served.headers["content-security-policy"]
    assert httpx.get(studio["url"] + "/preview/not-a-ticket").status_code == 404


def test_the_whole_flow_in_a_browser(studio, tmp_path):
    pdf = write_pdf(tmp_path / "forces.pdf")
    pptx = write_pptx(tmp_path / "photosynthesis.pptx")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(f"{studio['url']}/?token={studio['token']}")
            expect = sync_api.expect
            expect(page.locator("#status")).to_have_text("ready")

            # upload the PDF: its analysis appears, editable
            page.set_input_files("#file", str(pdf))
            page.click("#upload")
            expect(page.locator("#status")).to_have_text("upload: done", timeout=30_000)
            analysis = json.loads(page.locator("#analysis").input_value())
            assert analysis["analyser"] == "rule-based" and "force" in analysis["key_concepts"]
            analysis["target_grade_level"] = "grade 8"
            page.fill("#analysis", json.dumps(analysis))
            page.click("#save-analysis")
            expect(page.locator("#analyser")).to_contain_text("edited by the teacher")

            # generate: the page is checked in the browser and shown in the preview
            page.click("#generate")
            expect(page.locator("#status")).to_have_text("generate: done", timeout=60_000)
            expect(page.locator("#findings")).to_contain_text("no problems found")
            frame = page.frame_locator("#preview")
            expect(frame.locator("h1")).to_have_text("Forces lesson")

            # click the title in the preview: its lines and source come back
            frame.locator("h1").click()
            expect(page.locator("#picked")).to_contain_text("<h1>")
            expect(page.locator("#context")).to_contain_text("> ")
            page.fill("#instruction", "change the text to 'Forces in action'")
            page.click("#apply-edit")
            expect(page.locator("#status")).to_have_text("edit: done", timeout=30_000)
            expect(frame.locator("h1")).to_have_text("Forces in action")
            expect(page.locator("#versions li")).to_have_count(2)

            # undo, redo, compare
            page.click("#undo")
            expect(frame.locator("h1")).to_have_text("Forces lesson")
            page.click("#redo")
            expect(frame.locator("h1")).to_have_text("Forces in action")
            page.click("#compare")
            expect(page.locator("#diff")).to_contain_text("+")
            assert "Forces in action" in page.locator("#diff").inner_text()

            # the preview's scripts cannot reach the studio's API
            reached = frame.locator("body").evaluate(
                "() => fetch('/api/projects').then(() => 'reached', () => 'blocked')"
            )
            assert reached == "blocked"

            # a PPTX is another project
            before = page.locator("#projects li").count()
            page.set_input_files("#file", str(pptx))
            page.click("#upload")
            expect(page.locator("#status")).to_have_text("upload: done", timeout=30_000)
            expect(page.locator("#projects li")).to_have_count(before + 1)
            page.click("#generate")
            expect(page.locator("#status")).to_have_text("generate: done", timeout=60_000)
            expect(frame.locator("h1")).to_have_text("Photosynthesis")
            expect(frame.locator("body")).to_contain_text("chlorophyll", ignore_case=True)
        finally:
            browser.close()

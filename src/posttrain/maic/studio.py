"""The courseware studio: a teacher uploads a document, reviews its analysis, generates an
interactive page, clicks an element in the preview and asks for a change, and walks the
page's versions back and forth.

A FastAPI app over a `Store` (SQLite; `posttrain.maic.store`) with a page of its own
(`static/studio.html`, `.js`, `.css`, inlined at serve time under a nonce CSP: no build
step). Routes, all under the token but `/healthz`:

- `GET /` the page; `GET /api/projects`, `POST /api/projects?filename=NAME` (the document's
  bytes as the body; it is read, analysed and kept under the project's upload folder),
  `GET /api/projects/{p}` (project, analysis, versions, the current one);
- `PUT /api/projects/{p}/analysis` (the edited analysis; checked field by field);
- `POST /api/projects/{p}/generate` {mode}: a page through the generate -> verify -> retry
  loop, kept as a new version with its findings;
- `GET /api/projects/{p}/versions/{n}` (a version's page and detail), `POST .../show/{n}`,
  `POST .../undo`, `POST .../redo`, `GET .../compare?a=&b=` (unified diff);
- `GET /api/projects/{p}/context?start=&end=` (the numbered source lines of a pick);
- `POST /api/projects/{p}/edit` {picked, instruction}: the editing model's diff applied to
  the current page; a new version only when the diff applied cleanly, else the failed hunks
  come back and nothing changes;
- `POST /api/projects/{p}/verify`: the browser checks on the current version.

The preview never runs with the studio's origin: `POST .../preview/{n}` mints an unguessable
`/preview/<ticket>` URL for one version, served with the click-to-locate script added and a
`sandbox allow-scripts` CSP (an opaque origin, no network), in an `<iframe sandbox>`: the
generated page's scripts can reach neither the token nor the API; picks come back by
`postMessage`. Playwright's sync API is bound to the thread that
started it, so one worker thread owns the headless chromium of generation and verification.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from starlette.requests import Request  # at module level: FastAPI resolves annotations here

from posttrain.atomic import write_bytes
from posttrain.errors import InputError
from posttrain.maic.analysis import Analysis
from posttrain.maic.documents import load_document
from posttrain.maic.locate import LOCATE_SCRIPT, numbered_context
from posttrain.maic.pipeline import analyse
from posttrain.maic.store import Store, Version
from posttrain.models.chat.base import ChatModel

MAX_UPLOAD_BYTES = 50 * 1024 * 1024
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
EDITED = " (edited by the teacher)"


class GenerateRequest(BaseModel):
    mode: str = "fast"


class EditRequest(BaseModel):
    picked: dict[str, Any]
    instruction: str = Field(min_length=1, max_length=4000)


class _Browser:
    """One thread that owns a headless chromium, started on first use, for every browser
    call of the studio (Playwright's sync objects must stay on their thread)."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="maic-browser")
        self._context = None
        self._browser = None

    def run(self, work):
        return self._pool.submit(self._call, work).result()

    def _call(self, work):
        if self._browser is None:
            from posttrain.maic.browser import chromium

            self._context = chromium()
            self._browser = self._context.__enter__()
        return work(self._browser)

    def close(self) -> None:
        def stop(_browser) -> None:
            self._context.__exit__(None, None, None)
            self._browser = None

        if self._browser is not None:
            self._pool.submit(stop, None).result()
        self._pool.shutdown()


class Studio:
    """The studio's work, independent of HTTP (the routes are thin)."""

    def __init__(
        self,
        root: str | Path,
        *,
        model: ChatModel | None = None,
        editor: ChatModel | None = None,
        verify: bool = True,
        max_attempts: int = 3,
    ) -> None:
        from posttrain.maic.editor import scripted_editor

        self.store = Store(root)
        self.model = model
        self.editor = editor if editor is not None else scripted_editor()
        self.verify = verify
        self.max_attempts = max_attempts
        self.browser = _Browser()
        self._lock = threading.Lock()  # one generation or edit at a time per studio
        self.tickets: dict[str, tuple[int, int]] = {}

    def close(self) -> None:
        self.browser.close()
        self.store.close()

    # --- projects -------------------------------------------------------------------------

    def upload(self, filename: str, data: bytes) -> dict:
        """Keep the document (under its content's hash), read and analyse it, and only then
        make the project: a file that does not read leaves nothing behind."""
        name = _SAFE_NAME.sub("_", Path(filename).name).strip("._") or "document"
        if not data:
            raise InputError("the uploaded file is empty", name)
        folder = self.store.uploads / hashlib.sha256(data).hexdigest()[:16]
        path = folder / name
        fresh = not path.exists()
        folder.mkdir(parents=True, exist_ok=True)
        write_bytes(path, data)
        try:
            document = load_document(path)
            analysis = analyse(document, self.model)
        except Exception:
            if fresh:
                path.unlink(missing_ok=True)
            raise
        info = {
            "path": str(path),
            "kind": document.kind,
            "title": document.title,
            "sections": len(document.sections),
            "content_hash": document.content_hash,
        }
        return self.project(self.store.create_project(name, info, analysis.to_dict()))

    def project(self, project: int) -> dict:
        data = self.store.project(project)
        data["versions"] = [v.summary() for v in self.store.versions(project)]
        return data

    def set_analysis(self, project: int, analysis: dict) -> dict:
        """Keep the teacher's edited analysis (checked key by key); its label says edited."""
        made_by = str(self.store.project(project)["analysis"].get("analyser") or "unknown")
        label = made_by if made_by.endswith(EDITED) else made_by + EDITED
        checked = Analysis.from_dict(analysis, where="analysis", analyser=label)
        self.store.set_analysis(project, checked.to_dict())
        return self.project(project)

    # --- pages ----------------------------------------------------------------------------

    def generate(self, project: int, mode: str) -> Version:
        from posttrain.maic.generate import generate_page

        data = self.store.project(project)
        document = load_document(data["document"]["path"])
        analysis = Analysis.from_dict(data["analysis"], where="analysis")
        cache = self.store.root / "cache"

        def work(browser):
            check = None
            if self.verify:
                from posttrain.maic.verify import verify_page

                def check(html):
                    return verify_page(html, analysis.key_concepts, browser=browser)

            return generate_page(
                document,
                analysis,
                mode=mode,
                chat=self.model,
                verify=check,
                max_attempts=self.max_attempts,
                cache_dir=cache,
            )

        with self._lock:
            page = self.browser.run(work) if self.verify else work(None)
            detail = {
                "mode": page.mode,
                "source": page.source,
                "attempts": len(page.attempts),
                "cached": page.cached,
                "findings": page.findings,
            }
            return self.store.add_version(project, page.html, "generate", detail)

    def edit(self, project: int, picked: dict, instruction: str) -> dict:
        """Apply the editing model's diff to the current page. A new version only when it
        applied; the result says which hunks failed otherwise."""
        from posttrain.maic.editor import edit_page

        with self._lock:
            current = self.store.version(project)
            result = edit_page(current.html, picked, instruction, self.editor)
            report = result.to_dict()
            if not result.applied.ok:
                return {"applied": False, "edit": report, "version": current.summary()}
            detail = {"instruction": instruction, "picked": picked, **report}
            version = self.store.add_version(project, result.html, "edit", detail)
            return {"applied": True, "edit": report, "version": version.summary()}

    def verify_current(self, project: int) -> dict:
        from posttrain.maic.verify import verify_page

        version = self.store.version(project)
        concepts = self.store.project(project)["analysis"].get("key_concepts", [])
        findings = self.browser.run(
            lambda browser: verify_page(version.html, concepts, browser=browser)
        ).to_dict()
        self.store.set_detail(project, version.number, findings=findings)
        return findings

    def ticket(self, project: int, number: int) -> str:
        """An unguessable URL part that shows one version (the preview frame's source)."""
        ticket = secrets.token_urlsafe(24)
        self.tickets[ticket] = (project, number)
        return ticket

    def context(self, project: int, start: int, end: int) -> str:
        return numbered_context(self.store.version(project).html, start, end)


def _static(name: str) -> str:
    return resources.files("posttrain.maic").joinpath("static", name).read_text("utf-8")


def studio_page(nonce: str) -> str:
    """The studio's page with its script and style inlined (one response, no build step)."""
    page = _static("studio.html")
    return (
        page.replace("/*STYLE*/", _static("studio.css"))
        .replace("/*SCRIPT*/", _static("studio.js"))
        .replace("__NONCE__", nonce)
    )


def with_locate_script(html: str) -> str:
    """The page with the click-to-locate script added at the end of its body."""
    script = f"<script>{LOCATE_SCRIPT}</script>"
    at = html.lower().rfind("</body>")
    return html[:at] + script + html[at:] if at >= 0 else html + script


def create_app(studio: Studio, token: str, host: str = "127.0.0.1"):
    """The ASGI app: FastAPI behind the token guard (Host check, bearer or `?token=`)."""
    from fastapi import Body, FastAPI, HTTPException, Query
    from fastapi.responses import HTMLResponse, JSONResponse

    from posttrain.models.server.security import PageTokenGuard, allowed_hosts, page_headers

    if not token:
        raise ValueError("the studio needs a non-empty token")
    app = FastAPI(title="posttrain MAIC studio", docs_url=None, redoc_url=None)

    @app.exception_handler(InputError)
    async def bad_input(_request, error: InputError) -> JSONResponse:
        return JSONResponse({"error": " ".join(str(error).split())}, status_code=400)

    def found(call, *args):
        try:
            return call(*args)
        except InputError:
            raise  # 400, naming the file or key (the handler above)
        except KeyError as error:
            raise HTTPException(404, str(error.args[0])) from None
        except ValueError as error:
            raise HTTPException(409, str(error)) from None

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/", response_class=HTMLResponse)
    def page() -> HTMLResponse:
        nonce = secrets.token_urlsafe(16)
        # frame-src 'self': the preview frame (/preview/<ticket>), nothing else.
        headers = page_headers(nonce, frame_src="'self'")
        return HTMLResponse(studio_page(nonce), headers=headers)

    @app.get("/api/projects")
    def projects() -> dict:
        return {"projects": studio.store.projects()}

    @app.post("/api/projects")
    async def upload(request: Request, filename: str = Query(..., min_length=1)) -> dict:
        data = await request.body()
        if len(data) > MAX_UPLOAD_BYTES:
            raise HTTPException(413, f"{filename}: larger than {MAX_UPLOAD_BYTES} bytes")
        return studio.upload(filename, data)

    @app.get("/api/projects/{project}")
    def project(project: int) -> dict:
        return found(studio.project, project)

    @app.put("/api/projects/{project}/analysis")
    def analysis(project: int, body: dict = Body(...)) -> dict:
        return found(studio.set_analysis, project, body)

    @app.post("/api/projects/{project}/generate")
    def generate(project: int, request: GenerateRequest) -> dict:
        return found(studio.generate, project, request.mode).summary()

    @app.get("/api/projects/{project}/versions/{number}")
    def version(project: int, number: int) -> dict:
        found_version = found(studio.store.version, project, number)
        return {**found_version.summary(), "html": found_version.html}

    @app.post("/api/projects/{project}/show/{number}")
    def show(project: int, number: int) -> dict:
        return found(studio.store.show, project, number).summary()

    @app.post("/api/projects/{project}/undo")
    def undo(project: int) -> dict:
        return found(studio.store.undo, project).summary()

    @app.post("/api/projects/{project}/redo")
    def redo(project: int) -> dict:
        return found(studio.store.redo, project).summary()

    @app.get("/api/projects/{project}/compare")
    def compare(project: int, a: int = Query(..., ge=1), b: int = Query(..., ge=1)) -> dict:
        return {"a": a, "b": b, "diff": found(studio.store.compare, project, a, b)}

    @app.get("/api/projects/{project}/context")
    def context(project: int, start: int = Query(..., ge=1), end: int = Query(..., ge=1)):
        return {"text": found(studio.context, project, start, end)}

    @app.post("/api/projects/{project}/edit")
    def edit(project: int, request: EditRequest) -> dict:
        return found(studio.edit, project, request.picked, request.instruction)

    @app.post("/api/projects/{project}/verify")
    def verify(project: int) -> dict:
        return found(studio.verify_current, project)

    @app.post("/api/projects/{project}/preview/{number}")
    def preview_ticket(project: int, number: int) -> dict:
        found(studio.store.version, project, number)
        return {"url": f"/preview/{studio.ticket(project, number)}"}

    @app.get("/preview/{ticket}", response_class=HTMLResponse)
    def preview(ticket: str) -> HTMLResponse:
        if ticket not in studio.tickets:
            raise HTTPException(404, "no such preview")
        project_id, number = studio.tickets[ticket]
        html = with_locate_script(studio.store.version(project_id, number).html)
        headers = {
            "cache-control": "no-store",
            # An opaque origin whatever frames it: the page's scripts run, but reach neither
            # the studio's API nor the network.
            "content-security-policy": "sandbox allow-scripts; default-src 'none'; "
            "script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:",
            "referrer-policy": "no-referrer",
        }
        return HTMLResponse(html, headers=headers)

    return PageTokenGuard(app, token, allowed_hosts(host), ("/healthz", "/preview/"))


def serve(studio: Studio, token: str, host: str = "127.0.0.1", port: int = 0) -> None:
    """Serve the studio in this process until interrupted."""
    import uvicorn

    try:
        uvicorn.run(create_app(studio, token, host), host=host, port=port, log_level="warning")
    finally:
        studio.close()

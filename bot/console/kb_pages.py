"""Admin pages for the knowledge base: versions (when, by whom, documents, chunks, what changed), refresh with
a live progress bar, rollback, policy document upload, and draft FAQ review and approval.

Everything goes through `bot.kb_admin.KbAdmin` and `bot.helpdesk.admin` (never `ingest`); each action is
audited with who did it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from bot.accounts import Account, Role
from bot.helpdesk.admin import PiiInDraft, approve
from bot.helpdesk.store import DraftFaq
from bot.kb_admin import KbAdmin, UploadRefused

if TYPE_CHECKING:
    from bot.console.app import Console


def register(console: Console) -> None:
    kb = KbAdmin(console.cfg)

    def drafts() -> list[DraftFaq]:
        with console.sessions() as s:
            return list(s.scalars(select(DraftFaq).order_by(DraftFaq.status, DraftFaq.id.desc()).limit(100)))

    async def page(request: Request, account: Account) -> Response:
        return console.render(request, "kb.html", account, index=kb.status(), drafts=drafts(),
                              job=kb.job.as_json() if kb.job else None,
                              message=request.query_params.get("m", ""), problem=request.query_params.get("p", ""))

    def back(message: str = "", problem: str = "") -> Response:
        from urllib.parse import urlencode

        query = urlencode({k: v for k, v in (("m", message), ("p", problem)) if v})
        return RedirectResponse(f"/console/kb{'?' + query if query else ''}", status_code=303)

    async def refresh(request: Request, account: Account) -> Response:
        kb.start_refresh(f"console:{account.name}")
        console.audit(request, account, "kb_refresh")
        return back()

    async def progress(request: Request, account: Account) -> Response:
        return JSONResponse(kb.job.as_json() if kb.job else {"running": False, "stage": "", "result": ""})

    async def rollback(request: Request, account: Account) -> Response:
        form = await request.form()
        to = str(form.get("to", ""))
        text = kb.rollback_text(to, f"console:{account.name}")
        console.audit(request, account, "kb_rollback", f"version:{to}", text)
        return back(text) if not text.startswith("rollback refused") else back(problem=text)

    async def upload(request: Request, account: Account) -> Response:
        form = await request.form()
        item = form.get("file")
        if not isinstance(item, UploadFile):
            return back(problem="请选择一个文件 · Choose a file first")
        data = await item.read()
        try:
            target = kb.upload(item.filename or "", data)
        except UploadRefused as exc:
            console.audit(request, account, "kb_upload_refused", f"file:{item.filename}", str(exc))
            return back(problem=f"已拒绝 · Refused: {exc}")
        console.audit(request, account, "kb_upload", f"file:{target.name}", f"{len(data)} bytes")
        return back(f"已上传 {target.name}，点「更新知识库」发布 · Uploaded {target.name}; press Refresh to publish")

    async def approve_draft(request: Request, account: Account) -> Response:
        form = await request.form()
        try:
            draft_id = int(str(form.get("draft", "")))
            approve(console.cfg, [draft_id], account.name)
        except (ValueError, KeyError, PiiInDraft) as exc:
            return back(problem=str(exc).strip("'\""))
        console.audit(request, account, "draft_approved", f"draft:{draft_id}")
        return back(f"已批准 #{draft_id}，点「更新知识库」发布 · Approved #{draft_id}; press Refresh to publish")

    console.page("/kb", page, Role.ADMIN)
    console.page("/kb/progress", progress, Role.ADMIN)
    console.page("/kb/refresh", refresh, Role.ADMIN, methods=("POST",))
    console.page("/kb/rollback", rollback, Role.ADMIN, methods=("POST",))
    console.page("/kb/upload", upload, Role.ADMIN, methods=("POST",))
    console.page("/kb/approve", approve_draft, Role.ADMIN, methods=("POST",))

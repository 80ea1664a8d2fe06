"""The studio's HTTP app: the labelling page and its JSON API, as a plain FastAPI app.

Routes, relative to where the app is mounted (``annotate.route_prefix``, ``/annotate`` by default):

    GET  /                                   the page (static HTML + plain JS, no build step)
    GET  /static/{studio.js|studio.css}
    POST /api/session                        {"name", "token"?} → {"session", "annotator"}
    GET  /api/next                           → {"task": task or null, "progress": {"done", "total"}}
    GET  /api/tasks/{id}/video/{a|b}         the video: ?form=browser (default) or original
    POST /api/tasks/{id}/label               {"answers", "reasons", "seconds"?} → {"progress"}
    POST /api/tasks/{id}/skip                {"problem"?} → {"progress"}
    GET  /api/healthz
    GET  /disagreements                      the disagreement view (critic vs human vote)
    GET  /api/disagreements                  → {"items": [...]}, most certain critic first
    GET  /api/disagreements/{id}/video/{a|b} a disagreeing task's video (any signed-in reviewer)
    POST /api/disagreements/{id}/review      queue the item for relabelling → {"task_id", "queued"}

Every call but sign-in and health carries ``Authorization: Bearer <session>`` (401 without a known
one). Refusals use the critic app's conventions: an `InputError` with its status and
``{"detail": ...}`` — 401 unknown token, 404 unknown task, 409 a task not assigned to the caller,
422 a bad annotation (the detail names each field). The reply to a label comes after its commit.
Every signed-in annotator may open the disagreement view and queue a review (the studio serves one
team; with auth on, only its token holders).
"""

import html
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Literal

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from ipo_ray.annotate.aggregate import aggregate
from ipo_ray.annotate.disagreements import Disagreement, find_disagreements
from ipo_ray.annotate.records import Progress
from ipo_ray.annotate.store import Store
from ipo_ray.annotate.submission import check_submission
from ipo_ray.annotate.tasks import Task, review_task
from ipo_ray.annotate.video import browser_copy
from ipo_ray.critic.serve.inputs import InputError
from ipo_ray.data.video import VideoError
from ipo_ray.vocab import DIMENSIONS

_STATIC = files("ipo_ray.annotate") / "static"
_STATIC_TYPES = {"studio.js": "text/javascript", "review.js": "text/javascript", "studio.css": "text/css"}
# Display order of the answers: A, tie, B mirror the videos' left-to-right layout.
Side = Literal["a", "b"]
Form = Literal["browser", "original"]  # the browser copy, or the file as generated
_CHOICES = {"pointwise": ["Good", "Normal", "Bad"], "pairwise": ["A", "tie", "B"]}


@dataclass(frozen=True)
class StudioSettings:
    """What the app needs, as plain values (built from the `annotate` config section).

    Attributes:
        dir: Studio folder: ``studio.db`` and ``browser/`` copies of videos.
        tokens_file: JSON {name: token}; None = no auth.
        max_reason_chars: Longest reason accepted.
        max_prompt_chars: Longest prompt a queue accepts (checked when tasks are queued).
        video_min_side: Smallest side of a browser copy.
        lease_minutes: How long an open task holds its slot without renewal.
        review_annotators: Annotators of a review task queued from the disagreement view.
    """

    dir: str
    tokens_file: str | None
    max_reason_chars: int
    max_prompt_chars: int
    video_min_side: int
    lease_minutes: float = 30.0
    review_annotators: int = 1


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SignIn(_Body):
    # Letters, digits and ". @ - _", spaces inside only: a name is an identity and must not vary by blanks.
    name: str = Field(min_length=1, max_length=64, pattern=r"^[\w.@-]([\w .@-]*[\w.@-])?$")
    token: str | None = Field(None, max_length=256)


class Label(_Body):
    answers: dict[str, str] = Field(max_length=len(DIMENSIONS) + 4)
    reasons: dict[str, str] = Field(default_factory=dict, max_length=len(DIMENSIONS) + 4)
    seconds: float | None = Field(None, ge=0, le=86400)


class SkipBody(_Body):
    problem: str | None = Field(None, max_length=2000)


def build_api(settings: StudioSettings, clock: Callable[[], float] = time.time) -> FastAPI:
    """The studio's FastAPI app over the store in `settings.dir` (`clock` drives leases; tests move it)."""
    store = Store(Path(settings.dir) / "studio.db", lease_s=settings.lease_minutes * 60, clock=clock)
    tokens = _read_tokens(settings.tokens_file)
    api = FastAPI(title="ipo-ray annotation studio", version="1")

    @api.exception_handler(InputError)
    async def _refused(_: Request, error: InputError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
        return JSONResponse({"detail": error.detail}, status_code=error.status, headers=headers)

    def who(request: Request) -> str:
        scheme, _, session = request.headers.get("authorization", "").partition(" ")
        return store.annotator(session.strip() if scheme.lower() == "bearer" else None)

    def progress(annotator: str) -> dict[str, int]:
        p: Progress = store.progress(annotator)
        return {"done": p.done, "total": p.total}

    @api.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page(request: Request) -> HTMLResponse:
        return _page("page.html", request)

    @api.get("/disagreements", response_class=HTMLResponse, include_in_schema=False)
    def disagreements_page(request: Request) -> HTMLResponse:
        return _page("review.html", request)

    @api.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in _STATIC_TYPES:
            raise InputError(404, f"no static file {name!r}")
        return Response((_STATIC / name).read_bytes(), media_type=_STATIC_TYPES[name])

    @api.get("/api/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @api.post("/api/session")
    def sign_in(body: SignIn) -> dict[str, str]:
        return {"session": store.sign_in(body.name, body.token, tokens), "annotator": body.name}

    @api.get("/api/next")
    def next_task(request: Request) -> dict:
        annotator = who(request)
        task = store.next_task(annotator)
        shown = _shown(task) if task else None
        return {"task": shown, "progress": progress(annotator)}

    @api.get("/api/tasks/{task_id}/video/{side}")
    def video(task_id: str, side: Side, request: Request, form: Form = "browser") -> FileResponse:
        return _video(store.check_assigned(who(request), task_id), side, form, settings)

    @api.post("/api/tasks/{task_id}/label")
    def label(task_id: str, body: Label, request: Request) -> dict:
        annotator = who(request)
        task = store.task(task_id)
        checked = check_submission(task.kind, body.answers, body.reasons, settings.max_reason_chars)
        store.submit(annotator, task_id, checked, body.seconds)
        return {"progress": progress(annotator)}

    @api.post("/api/tasks/{task_id}/skip")
    def skip(task_id: str, body: SkipBody, request: Request) -> dict:
        annotator = who(request)
        store.skip(annotator, task_id, body.problem)
        return {"progress": progress(annotator)}

    def disagreements() -> list[Disagreement]:
        tasks = store.tasks()
        return find_disagreements(tasks, aggregate(store).voted, store.labels(), store.critic_verdicts())

    @api.get("/api/disagreements")
    def list_disagreements(request: Request) -> dict:
        who(request)
        queued = {t.task_id for t in store.tasks()}
        items = disagreements()
        return {"items": [_disagreement(d, review_task(d.task, 1).task_id in queued) for d in items]}

    @api.get("/api/disagreements/{task_id}/video/{side}")
    def review_video(task_id: str, side: Side, request: Request, form: Form = "browser") -> FileResponse:
        who(request)
        if not any(v.task_id == task_id for v in store.critic_verdicts()):
            raise InputError(404, f"task {task_id!r} has no critic verdict")
        return _video(store.task(task_id), side, form, settings)

    @api.post("/api/disagreements/{task_id}/review")
    def queue_review(task_id: str, request: Request) -> dict:
        who(request)
        if not any(d.task.task_id == task_id for d in disagreements()):
            raise InputError(404, f"task {task_id!r} is not in the disagreement view")
        task = review_task(store.task(task_id), settings.review_annotators)
        return {"task_id": task.task_id, "queued": store.add_tasks([task], first=True) == 1}

    return api


def _page(name: str, request: Request) -> HTMLResponse:
    # Where the app is mounted (Serve's route prefix): the page's links and API calls start there.
    base = html.escape(request.scope.get("root_path", "").rstrip("/"), quote=True)
    text = (_STATIC / name).read_text().replace("__BASE__", base)
    return HTMLResponse(text, headers={"Cache-Control": "no-cache"})


def _video(task: Task, side: str, form: str, settings: StudioSettings) -> FileResponse:
    path = task.video_path if side == "a" else task.video_path_b
    if path is None:
        raise InputError(404, f"task {task.task_id!r} is pointwise: it has no video b")
    if form == "original":
        if not Path(path).is_file():
            raise InputError(400, f"video {side}: the file is missing on the server")
        return FileResponse(path, media_type="video/mp4")
    try:
        copy = browser_copy(path, Path(settings.dir) / "browser", settings.video_min_side)
    except VideoError as error:
        # The server's path means nothing to an annotator (and is not theirs to see).
        why = str(error).removeprefix(f"{path}: ").replace(path, "the file")
        raise InputError(400, f"video {side}: {why}") from None
    return FileResponse(copy, media_type="video/mp4", headers={"Cache-Control": "private, max-age=3600"})


def _disagreement(d: Disagreement, review_queued: bool) -> dict:
    """A row of the disagreement view as JSON (the page sets every text with textContent)."""
    return {
        "task_id": d.task.task_id,
        "kind": d.task.kind,
        "prompt": d.task.prompt,
        "dimension": d.dimension,
        "videos": ["a", "b"] if d.task.kind == "pairwise" else ["a"],
        "human": {"verdict": d.human_verdict, "labels": [vars(h) for h in d.humans]},
        "critic": {
            "verdict": d.critic.verdict,
            "reason": d.critic.reason,
            "certainty": d.critic.certainty,
            "votes": d.critic.votes,
            "version": d.critic.version,
        },
        "review_queued": review_queued,
    }


def _shown(task: Task) -> dict:
    """What the page gets of a task: never its gold answers (annotators must not see them).

    The whole prompt, never cut: an annotator judges against all of it, and the queue already refused
    prompts over ``annotate.max_prompt_chars`` (`tasks.check_prompt_lengths`).
    """
    return {
        "task_id": task.task_id,
        "kind": task.kind,
        "prompt": task.prompt,
        "prompt_id": task.prompt_id,
        "dimensions": list(DIMENSIONS),
        "choices": _CHOICES[task.kind],
        "videos": ["a", "b"] if task.kind == "pairwise" else ["a"],
    }


def _read_tokens(path: str | None) -> dict[str, str] | None:
    if path is None:
        return None
    try:
        tokens = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise RuntimeError(f"annotate.tokens_file {path}: unreadable ({error})") from None
    if not isinstance(tokens, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in tokens.items()
    ):
        raise RuntimeError(f"annotate.tokens_file {path}: must be a JSON object {{name: non-empty token}}")
    return tokens

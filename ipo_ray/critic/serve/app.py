"""The critic's Ray Serve app: a FastAPI ingress whose replicas hold one vLLM engine per version.

Routes (under `serve.route_prefix`): ``POST /v1/score``, ``POST /v1/compare``, ``GET /v1/models``,
``GET /healthz``, and FastAPI's ``/docs`` and ``/openapi.json``. Bodies are JSON (videos named by
path under `serve.allowed_root`) or multipart forms (videos uploaded). Start it with
`jobs/serve_critic.py`, or with Serve's CLI::

    serve run ipo_ray.critic.serve.app:app_builder config=my.yaml critic.samples=4

(`config` is a YAML file; other ``key=value`` arguments are dotted config overrides.) ``serve run``
keeps Serve's own proxy address (127.0.0.1:8000); the job applies `serve.host`, `serve.port` and
`serve.request_timeout_s`.

Batching is vLLM's: each engine's thread adds every pending request to the running batch
(`engine.py`). There is no ``@serve.batch``: decoding and parsing are per-request work that gains
nothing from grouping, and grouping would only delay requests.

Each request: decode and sample frames in a worker thread, ask one question per dimension with n
samples through the version's engine (`engine.py`), parse every answer, vote, reply. With
``critic.vote=first_token`` (the default) a 1-token request per question after the samples returns
its first-token log-probabilities, and the verdict is the critic's most likely one (`voting`). Refusals are
`InputError`s and map to their status code; nothing a client sends produces a 500.

A version whose checkpoint declares the judge-first read (`tokenizer.judges_first`, written by
``critic.train.judge_first``) answers ``/v1/compare`` in two engine calls: each video's pointwise
questions first (read as ``critic.vote`` says), then the pairwise questions with those verdicts given as the
start of every answer (``Video A: Bad.\nVideo B: Good.\nAnswer:``), in both video orders unless the
request or ``serve.compare_both_orders`` says otherwise: the read its accuracy was measured with.
"""

import asyncio
import itertools
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from ray import serve
from ray.serve import Application
from starlette.datastructures import UploadFile

from ipo_ray.config import Config, load_config
from ipo_ray.config.serve import ServeConfig
from ipo_ray.critic.adapters import AdapterError, check_servable, is_adapter, read_adapter
from ipo_ray.critic.judge import (
    FIRST_TOKEN_TOP,
    CriticRequest,
    first_token_reads,
    judged_pair_requests,
    parse_replies,
    pooled_orders,
    voted_pair_verdicts,
)
from ipo_ray.critic.parse import ParsedAnswer
from ipo_ray.critic.serve.bodies import check_token, read_body
from ipo_ray.critic.serve.inputs import InputError, load_video, resolve_video_path, save_upload
from ipo_ray.critic.serve.responses import compare_response, score_response
from ipo_ray.critic.serve.schemas import (
    CompareRequest,
    CompareResponse,
    ErrorBody,
    Health,
    ModelsResponse,
    ScoreRequest,
    ScoreResponse,
    VersionInfo,
)
from ipo_ray.critic.serve.settings import ServerSettings, server_settings
from ipo_ray.critic.serve.versions import DEPLOYMENT, VersionSet, get_registry
from ipo_ray.critic.templates import Kind, pairwise_question, pointwise_question
from ipo_ray.critic.tokenizer import judges_first
from ipo_ray.vocab import DIMENSIONS

api = FastAPI(
    title="ipo-ray critic",
    version="1",
    description="A VLM critic judging generated videos: Good/Normal/Bad per dimension, or A/B/tie.",
)
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in {
        400: "Not a video, or corrupt",
        401: "Missing or wrong bearer token",
        403: "Path outside the allowed root",
        404: "Unknown critic version",
        413: "Video too large or too many frames",
        415: "Unsupported content type",
        422: "Malformed or invalid body",
    }.items()
}


def _body_doc(model: type, files: tuple[str, ...]) -> dict[str, Any]:
    """OpenAPI request body: the model as JSON, or as a form with the videos as files."""
    schema = model.model_json_schema()
    form = {
        **schema,
        "properties": {**schema["properties"], **{f: {"type": "string", "format": "binary"} for f in files}},
    }
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": schema}, "multipart/form-data": {"schema": form}},
        }
    }


# Helpers sit above the deployment class: Serve pickles the class by value when it is decorated,
# capturing only the module globals defined by then.
def _questions(prompt: str, dimensions: list[str], kind: Kind, cot: bool) -> list[str]:
    question = pointwise_question if kind == "pointwise" else pairwise_question
    try:
        return [question(prompt, d, cot) for d in dimensions]  # type: ignore[arg-type]
    except ValueError as error:  # e.g. a prompt of only whitespace
        raise InputError(422, str(error)) from None


def _read_token(env: str | None) -> str | None:
    if env is None:
        return None
    token = os.environ.get(env, "")
    if not token:
        raise RuntimeError(f"serve.auth is on but ${env} is empty on this replica; set it on every node")
    return token


@api.exception_handler(InputError)
async def _refused(_: Request, error: InputError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
    return JSONResponse({"detail": error.detail}, status_code=error.status, headers=headers)


@serve.deployment(name=DEPLOYMENT)
@serve.ingress(api)
class CriticServer:
    """One replica: every critic version's engine, and the routes.

    Args:
        settings: From `server_settings`.
    """

    async def __init__(self, settings: ServerSettings) -> None:
        # vLLM reads these when an engine starts; in-process engines start in seconds on CPU.
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(settings.kv_cache_gib))
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        self.settings = settings
        self.token = _read_token(settings.token_env)
        self.root = Path(settings.allowed_root) if settings.allowed_root else None
        from ipo_ray.critic.serve.engine import EngineHost  # imports vLLM: only in replicas

        self.host = EngineHost()
        self._lora_ids = itertools.count(1)
        self.versions = VersionSet(self._load_engine)
        for name, path in settings.versions.items():  # the replica is ready once these are loaded
            self.versions.add_ready(name, path, await self._load_engine(path))
        registry = get_registry(settings.app_name, settings.versions)
        self._follower = asyncio.get_running_loop().create_task(self.versions.follow(registry))

    async def _load_engine(self, path: str) -> Any:  # noqa: ANN401 - an engine.Engine
        """A full checkpoint gets an engine of its own; a LoRA adapter a handle on the default's."""
        from ipo_ray.critic.vllm_backend import VllmBackend

        settings = self.settings
        if not is_adapter(path):
            return await self.host.load(lambda: VllmBackend(path, settings.sampling, **settings.engine))
        from vllm.lora.request import LoRARequest

        default = self.versions.ready_version("default")
        if default is None:
            raise AdapterError("the default critic is not loaded; adapter versions are served on its engine")
        default_path, default_engine = default
        adapter = read_adapter(path)
        check_servable(adapter, Path(default_path), settings.max_lora_rank, Path(path).name)
        # vLLM keys its adapter cache by this id: a new id per load, so a re-pointed name never
        # answers with the adapter it replaced.
        lora_id = next(self._lora_ids)
        return default_engine.with_adapter(LoRARequest(f"critic-{lora_id}", lora_id, str(adapter.path)))

    def check_health(self) -> None:
        """Serve's health probe: a replica whose engine thread or version follower died is restarted."""
        if self.host.error is not None:
            raise RuntimeError(f"critic engines stopped: {self.host.error!r}")
        if self._follower.done():
            raise RuntimeError(f"version follower stopped: {self._follower.exception()!r}")

    @api.get("/healthz", response_model=Health)
    async def healthz(self) -> Health:
        """Liveness: the replica answers and has this many versions ready (no auth)."""
        return Health(status="ok", versions_ready=self.versions.ready_count())

    @api.get("/v1/models", response_model=ModelsResponse, responses={401: _ERRORS[401]})
    async def models(self, request: Request) -> ModelsResponse:
        """The critic versions of this replica and their state."""
        check_token(request.headers.get("authorization"), self.token)
        return ModelsResponse(
            default="default",
            versions=[
                VersionInfo(name=n, path=p, state=s, error=e) for n, p, s, e in self.versions.describe()
            ],
        )

    @api.post(
        "/v1/score",
        response_model=ScoreResponse,
        responses=_ERRORS,
        openapi_extra=_body_doc(ScoreRequest, ("video",)),
    )
    async def score(self, request: Request) -> ScoreResponse:
        """Judges one video against its prompt: per-dimension verdict, reason, votes, certainty, reward."""
        check_token(request.headers.get("authorization"), self.token)
        body, uploads = await read_body(request, ScoreRequest, ("video",), self.settings.limits)
        n, dimensions = self._plan(body.samples, body.dimensions)
        name = body.version or "default"
        with tempfile.TemporaryDirectory(prefix="critic-upload-") as scratch:
            (frames,) = await asyncio.gather(
                self._video(uploads.get("video"), body.video_path, "video", scratch)
            )
        questions = _questions(body.prompt, dimensions, "pointwise", self.settings.cot)
        answers = await self._ask(name, [CriticRequest((frames,), q) for q in questions], n, "pointwise")
        return score_response(name, dict(zip(dimensions, answers, strict=True)))

    @api.post(
        "/v1/compare",
        response_model=CompareResponse,
        responses=_ERRORS,
        openapi_extra=_body_doc(CompareRequest, ("video_a", "video_b")),
    )
    async def compare(self, request: Request) -> CompareResponse:
        """Compares videos A and B of one prompt: per-dimension preference (A/B/tie), votes, certainty."""
        check_token(request.headers.get("authorization"), self.token)
        body, uploads = await read_body(request, CompareRequest, ("video_a", "video_b"), self.settings.limits)
        n, dimensions = self._plan(body.samples, body.dimensions)
        name = body.version or "default"
        with tempfile.TemporaryDirectory(prefix="critic-upload-") as scratch:
            a, b = await asyncio.gather(
                self._video(uploads.get("video_a"), body.video_a_path, "video_a", scratch),
                self._video(uploads.get("video_b"), body.video_b_path, "video_b", scratch),
            )
        cot = self.settings.cot
        _questions(body.prompt, dimensions, "pairwise", cot)  # a bad prompt is refused before any work
        async with self.versions.use(name) as engine:  # both steps of a judge-first read, one version
            first = judges_first(engine.backend.tokenizer)
            both = next(x for x in (body.both_orders, self.settings.both_orders, first) if x is not None)
            verdicts = await self._judge_each(engine, (a, b), body.prompt, dimensions, n) if first else None
            requests = judged_pair_requests(a, b, body.prompt, dimensions, cot, both, verdicts)  # type: ignore[arg-type]
            answers = await self._answers(engine, requests, n, "pairwise")
        if both:  # one engine call for both orders; the swapped half's verdicts mapped back
            given, swapped = answers[: len(dimensions)], answers[len(dimensions) :]
            answers = [pooled_orders(g, s) for g, s in zip(given, swapped, strict=True)]
        return compare_response(name, dict(zip(dimensions, answers, strict=True)), verdicts)

    async def _judge_each(
        self,
        engine: Any,  # noqa: ANN401 - an engine.Engine
        videos: tuple[np.ndarray, np.ndarray],
        prompt: str,
        dimensions: list[str],
        n: int,
    ) -> tuple[dict[str, str | None], dict[str, str | None]]:
        """A judge-first read's first step: each video's pointwise verdicts, read as critic.vote says."""
        questions = _questions(prompt, dimensions, "pointwise", self.settings.cot)
        asked = [CriticRequest((v,), q) for v in videos for q in questions]
        judged = await self._answers(engine, asked, n, "pointwise")
        return voted_pair_verdicts(judged, dimensions)  # type: ignore[arg-type]

    def _plan(self, samples: int | None, dimensions: list[str] | None) -> tuple[int, list[str]]:
        n = samples or self.settings.samples
        if n > self.settings.max_samples:
            raise InputError(422, f"samples {n} is over this server's limit of {self.settings.max_samples}")
        if n > 1 and self.settings.sampling.temperature == 0:
            raise InputError(
                422, "the critic samples greedily (temperature 0): n identical answers; ask samples=1"
            )
        dims = list(dict.fromkeys(dimensions or DIMENSIONS))  # repeated dimensions asked once
        return n, dims

    async def _video(
        self, upload: UploadFile | None, path: str | None, field: str, scratch: str
    ) -> np.ndarray:
        if (upload is None) == (path is None):
            raise InputError(
                422, f"give {field} either uploaded as '{field}' or as '{field}_path', exactly one"
            )
        limits, frames = self.settings.limits, self.settings.num_frames
        if upload is not None:
            label = f"{field} ({upload.filename or 'upload'})"
            dest = Path(scratch) / f"{field}.video"
            await asyncio.to_thread(save_upload, upload.file, dest, limits, label)
            return await asyncio.to_thread(load_video, dest, label, limits, frames)
        assert path is not None
        resolved = resolve_video_path(self.root, path)
        return await asyncio.to_thread(load_video, resolved, f"{field} {path!r}", limits, frames)

    async def _ask(self, name: str, requests: list[CriticRequest], n: int, kind: Kind) -> list[list[Any]]:
        async with self.versions.use(name) as engine:
            return await self._answers(engine, requests, n, kind)

    async def _answers(
        self,
        engine: Any,  # noqa: ANN401 - an engine.Engine
        requests: list[CriticRequest],
        n: int,
        kind: Kind,
    ) -> list[list[ParsedAnswer]]:
        """n parsed answers per request from a version's engine, each with its question's first-token
        read when ``critic.vote=first_token``; the engine's refusals as `InputError`s."""
        first = self.settings.vote == "first_token"
        try:
            sampled = await engine.sample(requests, n, FIRST_TOKEN_TOP if first else 0)
        except ValueError as error:  # the engine refused the prompt, e.g. longer than its context
            raise InputError(422, str(error)) from None
        except RuntimeError as error:
            raise InputError(503, str(error)) from None
        texts = [s.texts for s in sampled]
        if any(len(t) != n for t in texts):  # vLLM losing samples would shrink the vote silently
            raise InputError(503, f"engine returned {[len(t) for t in texts]} answers, expected {n} each")
        cot = self.settings.cot
        reads = first_token_reads(engine.tokenizer, requests, sampled, kind, cot) if first else None
        return parse_replies(requests, texts, kind, cot, reads)


def build_app(cfg: Config) -> Application:
    """The Serve application for `cfg` (pass to `serve.run`)."""
    served = cfg.serve
    if cfg.critic.engine != "vllm":
        raise ValueError("the Serve app runs the vLLM engine; set critic.engine=vllm")
    return CriticServer.options(
        num_replicas=served.replicas,
        max_ongoing_requests=served.max_ongoing_requests,
        ray_actor_options=replica_resources(served),
    ).bind(server_settings(cfg))


def replica_resources(served: ServeConfig) -> dict[str, float]:
    """Ray resources of one replica: its CPUs, and its GPUs when it has any."""
    resources = {"num_cpus": served.cpus_per_replica}
    if served.gpus_per_replica:
        resources["num_gpus"] = served.gpus_per_replica
    return resources


def app_builder(args: dict[str, str]) -> Application:
    """`serve run` entry: ``config=FILE`` and dotted ``key=value`` overrides."""
    overrides = [f"{key}={value}" for key, value in args.items() if key != "config"]
    return build_app(load_config(args.get("config"), overrides))

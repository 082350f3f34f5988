"""``llmguide serve``: a saved model behind an HTTP service that people (a web page) and programs (any
OpenAI client) use.

Endpoints (FastAPI; the OpenAPI schema is at ``/openapi.json``):

* ``GET /`` — the web demo (one self-contained page: classify with probability bars, stream a completion);
* ``GET /health``, ``GET /v1/models``;
* ``POST /v1/classify`` — ``{"texts": [...]}`` → a label and probabilities per text, in order;
* ``POST /v1/completions`` — OpenAI's completions API (``prompt, max_tokens, temperature, top_p, seed, stop,
  stream``); ``stream: true`` answers with server-sent events in OpenAI's chunk format, ending ``data: [DONE]``;
* ``POST /v1/feedback`` — with ``--log-file``: a user's label for an answered text, logged as JSONL;
* ``GET /metrics`` — Prometheus text: requests, errors, rejections, latency and batch-size histograms, queue depth.

Concurrent requests are batched (:mod:`llmguide.batching`) behind a bounded queue: past it the answer is
503 with ``Retry-After``. Every bad request gets a 4xx whose message is one line naming the field and the
limit. Defaults are safe: bind 127.0.0.1; any other address needs an API key (checked in constant time);
no CORS unless asked; weights load from safetensors only (no pickle).

Where the parts live: the request and response schemas in :mod:`llmguide.api`, metrics and the feedback log
in :mod:`llmguide.monitoring`, the batching workers in :mod:`llmguide.batching`, the command's arguments in
:mod:`llmguide.cli`. This module (~600 lines) keeps what one request passes through, read together: the
config, loading the models, the guards, the shared state, the routes, the app, and a server in a subprocess
for tests, benchmarks and notebook 07.
"""


import asyncio
import hmac
import json
import os
import sys
import time
import uuid
from collections.abc import Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any

from llmguide.api import api_schemas, validation_message
from llmguide.batching import (
    Batcher,
    GenRequest,
    QueueFull,
    classify_batch,
    generate_batch,
    thread_safe_emitter,
)
from llmguide.classify import pad_id
from llmguide.folder import LABELS, read_meta
from llmguide.folder import load_folder as load_model_folder
from llmguide.inference import load_classifier
from llmguide.monitoring import FeedbackLog, Metrics, MetricsMiddleware
from llmguide.runtime import get_device

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
ENDPOINTS = ("/", "/health", "/metrics", "/v1/models", "/v1/classify", "/v1/completions", "/v1/feedback",
             "/openapi.json")


@dataclass
class ServeConfig:
    """What ``llmguide serve`` runs: the model folders, the address, the batching and the limits.

    Limits are the contract with clients: a request past one gets a 4xx naming it.
    """

    classifier: str | None = None  # a classifier folder (``llmguide finetune``)
    lm: str | None = None  # a language-model folder (``llmguide pretrain``, data/review-gpt)
    host: str = "127.0.0.1"
    port: int = 8000
    max_batch: int = 32  # rows per forward pass (texts, or generations)
    max_wait_ms: float = 5.0  # how long a batch waits to fill
    max_queue: int = 256  # waiting requests per model; past it: 503 + Retry-After
    max_texts: int = 64  # texts per /v1/classify request
    max_text_chars: int = 4000  # characters per text (tokens past the model's context are cut and reported)
    max_prompt_chars: int = 4000
    max_tokens: int = 256  # cap on a completion's max_tokens
    max_gen_batch: int = 8  # generations decoded together
    max_body_bytes: int = 1 << 20  # request body limit
    request_timeout_s: float = 120.0  # a request waiting longer gets 503
    api_key: str | None = None  # required as "Authorization: Bearer KEY" on /v1/* and /metrics when set
    cors_origins: list[str] = field(default_factory=list)
    log_file: str | None = None  # opt-in: log classified texts and user feedback as JSONL
    device: str | None = None
    threads: int | None = None  # torch CPU threads per process (None: torch's choice); 1 on a busy machine
    workers: int = 1


class ServeError(Exception):
    """An error for the client: HTTP ``status`` and a one-line ``message`` naming ``param`` and the limit."""

    def __init__(self, status: int, message: str, param: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.headers = status, message, param, headers or {}


# ---------------------------------------------------------------- loading (the one place models are read)

@dataclass
class ServedModel:
    """A loaded model folder: ``kind`` "classifier" (``classifier`` is set) or "lm" (``model``, ``tokenizer``)."""

    name: str
    kind: str
    folder: Path
    tokenizer: Any
    model: Any = None  # the GPT of an LM folder
    classifier: Any = None  # an llmguide.inference.Classifier
    meta: dict = field(default_factory=dict)

    @property
    def block_size(self) -> int:
        return self.classifier.block_size if self.classifier is not None else self.model.config.block_size


def load_folder(folder: str | Path, kind: str, device: str | None = None) -> ServedModel:
    """Load a model folder for serving (safetensors weights, JSON config, tokenizer.json: no pickle).

    Args:
        folder: a classifier folder (has labels.json) or a language-model folder.
        kind: "classifier" or "lm": what the caller expects the folder to be.
        device: cpu, cuda or mps (default: the best available).
    Returns:
        A :class:`ServedModel` in eval mode.
    Raises:
        ValueError: one line saying which folder failed and why (a missing, wrong or corrupt folder).
    """
    path = Path(folder).expanduser()
    flag = "--classifier" if kind == "classifier" else "--lm"
    try:  # the folder says what it holds (llmguide.folder); an unreadable one is reported below
        is_classifier = read_meta(path)["kind"] == "gpt-classifier"
    except (OSError, ValueError):
        is_classifier = (path / LABELS).is_file()
    if path.is_dir() and is_classifier != (kind == "classifier"):
        other = "--lm" if kind == "classifier" else "--classifier"
        what = "a classifier folder (it has labels.json)" if is_classifier else "a language-model folder (no labels.json)"
        raise ValueError(f"{flag} {path}: this is {what}; pass it with {other}")
    try:
        if kind == "classifier":
            clf = load_classifier(path, device=device)
            return ServedModel(path.name, kind, path, clf.tokenizer, classifier=clf, meta=clf.config)
        model, tokenizer, meta = load_model_folder(path, kind="gpt-lm", device=get_device(device))
        return ServedModel(path.name, kind, path, tokenizer, model=model, meta=meta)
    except Exception as err:  # noqa: BLE001 - any failure to load is reported as one line
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{flag} {path} failed to load: {first}") from None


def load_models(config: ServeConfig) -> list[ServedModel]:
    """The folders of ``config``, loaded; at least one is needed."""
    if not config.classifier and not config.lm:
        raise ValueError("nothing to serve: pass --classifier DIR and/or --lm DIR "
                         "(e.g. the folders `llmguide quickstart` writes under runs/quickstart/)")
    models = [load_folder(config.classifier, "classifier", config.device)] if config.classifier else []
    if config.lm:
        models.append(load_folder(config.lm, "lm", config.device))
    if len(models) == 2 and models[0].name == models[1].name:
        models[1].name += "-lm"  # names must be unique: they are the "model" field of requests
    return models


def check_bind(host: str, api_key: str | None) -> None:
    """Refuse to listen beyond this machine without an API key."""
    if host not in LOCAL_HOSTS and not api_key:
        raise ValueError(f"--host {host} makes the service reachable from other machines: set an API key with "
                         "--api-key KEY or LLMGUIDE_API_KEY (clients send 'Authorization: Bearer KEY'), or "
                         "keep the default --host 127.0.0.1")


# ---------------------------------------------------------------- ASGI middleware: the key and the body

def _error_body(message: str, status: int, param: str | None = None) -> dict:
    kind = {401: "authentication_error", 404: "not_found_error", 503: "overloaded_error"}.get(
        status, "invalid_request_error" if status < 500 else "server_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": status}}


async def _send_error(send: Any, status: int, message: str, headers: dict | None = None) -> None:
    body = json.dumps(_error_body(message, status)).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class GuardMiddleware:
    """The API key on /v1/* and /metrics (constant-time check), and the body: size limit, valid UTF-8."""

    def __init__(self, app: Any, api_key: str | None, max_body_bytes: int) -> None:
        self.app, self.max_body = app, max_body_bytes
        self.key = api_key.encode() if api_key else None

    def _authorised(self, scope: dict) -> bool:
        if self.key is None or not (scope["path"].startswith("/v1/") or scope["path"] == "/metrics"):
            return True
        given = dict(scope["headers"]).get(b"authorization", b"")
        token = given[7:] if given[:7].lower() == b"bearer " else b""
        return hmac.compare_digest(token, self.key)  # time does not depend on where they differ

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if not self._authorised(scope):
            return await _send_error(send, 401, "missing or wrong API key: send the header "
                                     "'Authorization: Bearer KEY' with the key the server was started with",
                                     {"WWW-Authenticate": "Bearer"})
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        too_big = (f"request body is over the limit of {self.max_body} bytes: send fewer or shorter texts "
                   "(or start the server with a larger --max-body-bytes)")
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > self.max_body:
            return await _send_error(send, 413, too_big)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body:
                return await _send_error(send, 413, too_big)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as err:
            return await _send_error(send, 400, f"request body is not valid UTF-8 (byte {err.start}): "
                                     "encode the JSON as UTF-8")
        sent = False

        async def replay() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def web_page() -> str:
    """The demo page (``llmguide/web/index.html``, package data)."""
    return resources.files("llmguide").joinpath("web", "index.html").read_text(encoding="utf-8")


async def wait_result(job: Any, timeout: float) -> Any:
    """A job's result, or 503 once ``timeout`` seconds have passed (the request never hangs)."""
    try:
        return await asyncio.wait_for(asyncio.shield(job.future), timeout)
    except TimeoutError:
        job.cancelled = True
        raise ServeError(503, f"the request waited over {timeout:g} s: the server is overloaded, retry later",
                         headers={"Retry-After": "1"}) from None
    except QueueFull as err:
        raise ServeError(503, str(err), headers={"Retry-After": "1"}) from None


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


# ---------------------------------------------------------------- request and response schemas

class _State:
    """What the routes share: the models, their batchers, the metrics and the feedback log."""

    def __init__(self, config: ServeConfig, models: Sequence[ServedModel]) -> None:
        self.config, self.metrics = config, Metrics()
        self.models = {m.name: m for m in models}
        self.created = int(time.time())
        self.log = FeedbackLog(config.log_file) if config.log_file else None
        self.batchers: dict[str, Batcher] = {}
        for m in models:
            on_batch = partial(self.metrics.batch_size, m.name)
            if m.kind == "classifier":
                run = partial(classify_batch, m.classifier.model, pad_id=pad_id(m.tokenizer), max_rows=config.max_batch)
                rows = config.max_batch
            else:
                run, rows = partial(generate_batch, m.model, m.tokenizer), min(config.max_batch, config.max_gen_batch)
            self.batchers[m.name] = Batcher(run, rows, config.max_wait_ms, config.max_queue, on_batch)

    def pick(self, name: str | None, kind: str) -> ServedModel:
        """The model a request names (or the only one of ``kind``); 404 / 400 one-liners otherwise."""
        endpoint = "/v1/classify" if kind == "classifier" else "/v1/completions"
        of_kind = [m for m in self.models.values() if m.kind == kind]
        if name is None:
            if not of_kind:
                flag = "--classifier" if kind == "classifier" else "--lm"
                raise ServeError(404, f"this server has no {'classifier' if kind == 'classifier' else 'language model'}"
                                 f" loaded: start it with {flag} DIR", "model")
            return of_kind[0]
        if name not in self.models:
            raise ServeError(404, f"unknown model {name[:60]!r}: this server has {sorted(self.models)} "
                             "(GET /v1/models)", "model")
        if self.models[name].kind != kind:
            what = "classifier" if self.models[name].kind == "classifier" else "language model"
            raise ServeError(400, f"model {name!r} is a {what}, not for {endpoint}", "model")
        return self.models[name]

    def submit(self, name: str, payload: Any, size: int, endpoint: str) -> Any:
        try:
            return self.batchers[name].submit(payload, size)
        except QueueFull as err:
            with self.metrics.lock:
                self.metrics.rejected[endpoint] += 1
            raise ServeError(503, f"server busy: {err}; retry after 1 s", headers={"Retry-After": "1"}) from None


def _encode_for_classifier(served: ServedModel, texts: list[str], truncate: bool) -> tuple[list, list[bool]]:
    from llmguide.classify import encode_texts

    for i, text in enumerate(texts):
        if not text.strip():
            raise ServeError(422, f"texts.{i}: the text is blank: send at least one visible character", f"texts.{i}")
    clf = served.classifier
    ids, truncated = encode_texts(texts, served.tokenizer, clf.block_size, clf.end_id, warn=False)
    if not truncate and any(truncated):
        i = truncated.index(True)
        keep = clf.block_size - (clf.end_id is not None)
        raise ServeError(422, f"texts.{i}: the text is {len(served.tokenizer.encode(texts[i]))} tokens, over this "
                         f"model's limit of {keep}: shorten it, or send truncate=true to use its first {keep}",
                         f"texts.{i}")
    return ids, truncated


def _encode_prompt(served: ServedModel, prompt: str) -> list[int]:
    ids = served.tokenizer.encode(prompt)
    if not ids:
        raise ServeError(422, "prompt: encodes to no tokens: send at least one character", "prompt")
    if len(ids) > served.block_size:
        raise ServeError(422, f"prompt: {len(ids)} tokens, over this model's context of {served.block_size} "
                         f"(block_size): send at most the last {served.block_size}", "prompt")
    return ids


def _completion_routes(app: Any, state: _State, S: Any, errors: dict) -> None:
    from fastapi.responses import StreamingResponse

    def body(cid: str, model: str, text: str, finish: str | None, usage: dict | None = None) -> dict:
        return {"id": cid, "object": "text_completion", "created": int(time.time()), "model": model,
                "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}],
                **({"usage": usage} if usage else {})}

    def usage(result: dict) -> dict:
        return {"prompt_tokens": result["prompt_tokens"], "completion_tokens": result["completion_tokens"],
                "total_tokens": result["prompt_tokens"] + result["completion_tokens"]}

    stream_doc = {200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                        "description": "with stream=true: `data: {chunk}` events, then `data: [DONE]`"}}

    @app.post("/v1/completions", response_model=S.CompletionResponse, responses={**errors, **stream_doc},
              summary="Continue a prompt (OpenAI completions API)")
    async def completions(req: S.CompletionRequest) -> Any:
        served = state.pick(req.model, "lm")
        stops = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
        pieces: asyncio.Queue = asyncio.Queue()
        emit = thread_safe_emitter(asyncio.get_running_loop(), pieces) if req.stream else None
        gen = GenRequest(_encode_prompt(served, req.prompt), req.max_tokens, req.temperature,
                         None if req.top_p >= 1 else req.top_p, req.seed, stops, emit)
        job = state.submit(served.name, gen, 1, "/v1/completions")
        cid = new_id("cmpl")
        if not req.stream:
            try:
                result = await wait_result(job, state.config.request_timeout_s)
            finally:
                job.cancelled = True  # no-op when done; stops the row when the client went away
            with state.metrics.lock:
                state.metrics.tokens[served.name] += result["completion_tokens"]
            return body(cid, served.name, result["text"], result["finish_reason"], usage(result))
        job.future.add_done_callback(lambda _: pieces.put_nowait(None))  # after every piece: they were queued first

        async def events() -> Any:
            try:
                finished = False
                while not finished:
                    parts = [await pieces.get()]
                    while not pieces.empty():  # pieces that arrived meanwhile go out as one event:
                        parts.append(pieces.get_nowait())  # a slow client costs one write, not one per token
                    finished = parts[-1] is None
                    text = "".join(p for p in parts if p is not None)
                    if text:
                        yield f"data: {json.dumps(body(cid, served.name, text, None), ensure_ascii=False)}\n\n"
                try:
                    result = job.future.result()
                except Exception as err:  # noqa: BLE001 - reported in the stream: the status line is sent
                    yield f"data: {json.dumps(_error_body(f'generation failed: {err}', 500))}\n\n"
                else:
                    with state.metrics.lock:
                        state.metrics.tokens[served.name] += result["completion_tokens"]
                    yield f"data: {json.dumps(body(cid, served.name, '', result['finish_reason'], usage(result)))}\n\n"
                yield "data: [DONE]\n\n"
            finally:
                job.cancelled = True

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _classify_routes(app: Any, state: _State, S: Any, errors: dict) -> None:
    @app.post("/v1/classify", response_model=S.ClassifyResponse, responses=errors,
              summary="Label texts (probabilities per class, in input order)")
    async def classify(req: S.ClassifyRequest) -> Any:
        served = state.pick(req.model, "classifier")
        ids, truncated = _encode_for_classifier(served, req.texts, req.truncate)
        job = state.submit(served.name, ids, len(ids), "/v1/classify")
        probs = await wait_result(job, state.config.request_timeout_s)  # (N, K)
        labels = served.classifier.labels
        results = []
        for p, x, cut in zip(probs, ids, truncated, strict=True):
            best = int(p.argmax())
            results.append({"label": labels[best], "probability": float(p[best]), "tokens": len(x), "truncated": cut,
                            "probabilities": {name: float(v) for name, v in zip(labels, p, strict=True)}})
        rid = new_id("clf")
        if state.log is not None:
            state.log.write([{"kind": "request", "id": f"{rid}/{i}", "model": served.name, "text": t,
                              "label": r["label"], "probability": r["probability"]}
                             for i, (t, r) in enumerate(zip(req.texts, results, strict=True))])
        return {"id": rid, "model": served.name, "results": results, "truncated": sum(truncated)}

    @app.post("/v1/feedback", responses=errors, summary="Log a user's label for a classified text (--log-file)")
    async def feedback(req: S.FeedbackRequest) -> dict:
        if state.log is None:
            raise ServeError(404, "feedback logging is off: start the server with --log-file FILE to collect it")
        labels = [lab for m in state.models.values() if m.kind == "classifier" for lab in m.classifier.labels]
        if req.label not in labels:
            raise ServeError(422, f"label: {req.label[:40]!r} is not one of {labels}", "label")
        state.log.write([{"kind": "feedback", "id": f"{req.id}/{req.index}", "label": req.label}])
        return {"status": "logged"}


def create_app(config: ServeConfig, models: Sequence[ServedModel]) -> Any:
    """The FastAPI app serving ``models`` with the batching, limits and security of ``config``.

    Args:
        config: a :class:`ServeConfig` (host/port are the caller's business: uvicorn or a TestClient).
        models: from :func:`load_models` (or :func:`load_folder`).
    Returns:
        An ASGI app; its lifespan starts one batching worker per model and stops them.
    """
    try:
        from fastapi import FastAPI, Request
        from fastapi.exceptions import RequestValidationError
        from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
        from starlette.exceptions import HTTPException as StarletteHTTPException
    except ImportError:
        raise ImportError("llmguide serve needs FastAPI and uvicorn: pip install 'llmguide[serve]'") from None
    check_bind(config.host, config.api_key)
    state, S = _State(config, models), api_schemas(config)

    @asynccontextmanager
    async def lifespan(_: Any):
        for batcher in state.batchers.values():
            batcher.start()
        yield
        for batcher in state.batchers.values():
            await batcher.stop()

    from llmguide import __version__

    # docs_url=None: the Swagger page loads its script from a CDN; the schema itself stays at /openapi.json
    app = FastAPI(title="llmguide", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description=__doc__.split("\n\n")[0])
    app.state.llmguide = state
    errors = {code: {"model": S.ErrorResponse, "description": text} for code, text in (
        (400, "bad request"), (401, "missing or wrong API key"), (404, "unknown model"),
        (413, "body over the size limit"), (422, "a field is invalid or over its limit"),
        (503, "overloaded: retry after the Retry-After seconds"))}

    @app.exception_handler(ServeError)
    async def _serve_error(_: Request, err: ServeError) -> JSONResponse:
        return JSONResponse(_error_body(err.message, err.status, err.param), err.status, headers=err.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        message = f"{request.method} {request.url.path}: {err.detail}"  # e.g. 404 Not Found, 405 Method Not Allowed
        return JSONResponse(_error_body(message, err.status_code), err.status_code, headers=err.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        message, param = validation_message(err.errors())
        return JSONResponse(_error_body(message, 422, param), 422)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(web_page(), headers={"Content-Security-Policy": "default-src 'self'; script-src "
                                                 "'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'",
                                                 "X-Content-Type-Options": "nosniff"})

    @app.get("/health", response_model=S.Health, summary="Liveness and queue depths")
    async def health() -> dict:
        return {"status": "ok", "models": {n: m.kind for n, m in state.models.items()},
                "queue_depth": {n: b.depth for n, b in state.batchers.items()},
                "api_key_required": config.api_key is not None}

    @app.get("/v1/models", response_model=S.ModelList, responses=errors, summary="The loaded models")
    async def list_models() -> dict:
        return {"object": "list", "data": [
            {"id": n, "created": state.created, "kind": m.kind, "block_size": m.block_size,
             "labels": m.classifier.labels if m.classifier is not None else None} for n, m in state.models.items()]}

    @app.get("/metrics", response_class=PlainTextResponse, responses=errors, summary="Prometheus metrics")
    async def metrics() -> PlainTextResponse:
        text = state.metrics.render({n: b.depth for n, b in state.batchers.items()})
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    _classify_routes(app, state, S, errors)
    _completion_routes(app, state, S, errors)
    app.add_middleware(GuardMiddleware, api_key=config.api_key, max_body_bytes=config.max_body_bytes)
    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=config.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(MetricsMiddleware, metrics=state.metrics, endpoints=ENDPOINTS)  # outermost: it sees every answer
    return app


def _app_from_env() -> Any:
    """The app of one uvicorn worker (``--workers N``): the config travels in $LLMGUIDE_SERVE_CONFIG."""
    config = ServeConfig(**json.loads(os.environ["LLMGUIDE_SERVE_CONFIG"]))
    set_threads(config.threads)
    return create_app(config, load_models(config))


def set_threads(threads: int | None) -> None:
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


# ---------------------------------------------------------------- a server in a subprocess (tests, benchmark, notebook)

class ServerProcess:
    """A server started as a subprocess on 127.0.0.1 and a free port, stopped by :meth:`stop` (or ``with``).

    Args:
        command: the program and its arguments; ``{port}`` in them is replaced by the chosen port.
        health: the path that answers 200 once the server is ready.
        timeout: seconds to wait for it (the models load first).
        env: extra environment variables.
    """

    def __init__(self, command: Sequence[str], health: str = "/health", timeout: float = 120.0,
                 env: dict | None = None) -> None:
        import subprocess
        import tempfile

        from llmguide.train import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.TemporaryFile(mode="w+")  # a file, not a pipe: a full pipe would block the server
        self.proc = subprocess.Popen([c.replace("{port}", str(self.port)) for c in command], stdout=self.log,
                                     stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        try:
            self._wait(health, timeout)
        except BaseException:
            self.stop()
            raise

    def _wait(self, health: str, timeout: float) -> None:
        import urllib.error
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with status {self.proc.returncode}: {self.output()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + health, timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the server did not answer {health} within {timeout:g} s: {self.output()[-2000:]}")

    def output(self) -> str:
        """What the server printed so far."""
        self.log.seek(0)
        return self.log.read()

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s)."""
        import subprocess

        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def start_server(classifier: str | Path | None = None, lm: str | Path | None = None, *flags: str,
                 timeout: float = 120.0, env: dict | None = None) -> ServerProcess:
    """``llmguide serve`` in a subprocess on 127.0.0.1 and a free port, ready when this returns.

    Args:
        classifier, lm: the model folders.
        flags: more ``llmguide serve`` arguments, e.g. ``"--max-batch", "1"``.
    Returns:
        A :class:`ServerProcess`; its ``url`` is ``http://127.0.0.1:PORT``. Stop it with ``stop()`` or ``with``.
    """
    command = [sys.executable, "-m", "llmguide.cli", "serve", "--port", "{port}"]
    command += ["--classifier", str(classifier)] if classifier else []
    command += ["--lm", str(lm)] if lm else []
    return ServerProcess([*command, *flags], timeout=timeout, env=env)

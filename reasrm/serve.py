"""`reasrm serve`: the judge behind HTTP (FastAPI + uvicorn, extra ``reasrm[serve]``).

    reasrm serve --model path/to/judge --port 8000 --api-key SECRET

Endpoints: ``POST /v1/chat/completions`` (the OpenAI chat-completions protocol: messages, max_tokens,
temperature, top_p, n, stop; usage in the reply), ``POST /v1/judge`` (a prompt or conversation and two
responses -> verdict, status, the raw text of each order, the flip flag), ``GET /v1/models``, ``GET /health``
(liveness, and the count of requests served per endpoint).

Binds 127.0.0.1 unless told otherwise. With an API key, a request without ``Authorization: Bearer KEY``
gets 401 and is not processed (constant-time comparison), except ``GET /health`` (liveness probes carry no
key); ``/docs`` and ``/openapi.json`` are off. Malformed bodies get 422 naming the field (text that is not
valid Unicode included, before it joins a batch), bodies over the size limit 413 (counted on the bytes
read, so a chunked upload cannot skip it), generation errors 500 with the message; the server keeps serving.
A batch whose backend call fails is retried member by member, so only the culprit request fails.

Concurrent requests are batched: a queue gathers requests for a few milliseconds and sends them to the
backend as one ``generate`` call (one at a time, in a worker thread), so throughput under load beats one
request at a time. A request that omits ``temperature`` gets the server's setting (greedy by default).

Scheduling policy (``hf`` backend): ``/v1/judge`` and ``/v1/chat/completions`` run in two lanes, each with its
own worker, so a long chat generation never delays a verdict; within a batch every request is answered as
soon as its own rows are done, so one long request does not hold a batch of short ones for its length; a
request whose client has disconnected leaves its batch at the next decode step (or before its batch starts);
and ``max_tokens`` is capped at the server's ``--max-new-tokens``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import time
import uuid
from contextlib import asynccontextmanager
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, Field, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from reasrm.backends import Generation, GenerationConfig
from reasrm.backends.generation import MAX_SEED, MIN_TEMPERATURE
from reasrm.errors import ReasrmError
from reasrm.judge import Judge
from reasrm.rubrics import available_packs


def _encodable(text: str) -> str:
    """Refuse text a tokenizer cannot take (a lone surrogate such as "\\ud800"), before it joins a batch."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"not valid Unicode: a lone surrogate at character {e.start}") from None
    return text


Text = Annotated[str, AfterValidator(_encodable)]


class Message(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: Text


def _temperature(value: float | None) -> float | None:
    if value is not None and 0 < value < MIN_TEMPERATURE:
        raise ValueError(f"must be 0 (greedy) or at least {MIN_TEMPERATURE}, got {value}")
    return value


class ChatRequest(BaseModel):
    model: str | None = None
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)  # capped at the server's --max-new-tokens
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: Annotated[float | None, AfterValidator(_temperature)] = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    n: int = Field(default=1, ge=1, le=16)
    stop: Text | list[Text] | None = None
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED)


class JudgeRequest(BaseModel):
    prompt: Text | None = None
    conversation: list[Message] | None = None
    response_a: Text = Field(min_length=1)
    response_b: Text = Field(min_length=1)
    rubric: Text | None = None  # a pack id of the server's (else the judge's forced or card pack, else its format)
    reference: Text | None = None  # a reference answer, shown by packs with `reference: use|require`
    both_orders: bool = False
    seed: int = Field(default=0, ge=0, le=MAX_SEED)

    @model_validator(mode="after")
    def _one_conversation(self) -> JudgeRequest:
        if (self.prompt is None) == (self.conversation is None):
            raise ValueError("give exactly one of 'prompt' (a string) or 'conversation' (messages)")
        return self


class Batcher:
    """Gathers generation requests for ``window`` seconds and runs each settings group as one backend call.
    A request is answered as soon as its own rows are done; a cancelled one (its client gone) is skipped,
    or dropped from its running batch at the next decode step."""

    def __init__(self, backend, window: float = 0.005):
        self.backend, self.window = backend, window
        self.queue: asyncio.Queue = asyncio.Queue()

    def submit(self, conversations: list[list[dict]], settings: GenerationConfig) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self.queue.put_nowait((conversations, settings, future))
        return future

    async def generate(self, conversations: list[list[dict]], settings: GenerationConfig) -> list[Generation]:
        return await self.submit(conversations, settings)

    async def run(self) -> None:
        while True:
            items = [await self.queue.get()]
            deadline = time.monotonic() + self.window
            while (left := deadline - time.monotonic()) > 0:
                try:
                    items.append(await asyncio.wait_for(self.queue.get(), left))
                except TimeoutError:
                    break
            groups: dict[tuple, list] = {}
            for item in items:
                if not item[2].done():  # a cancelled request (its client gone) is not generated
                    groups.setdefault(dataclasses.astuple(item[1]), []).append(item)
            for group in groups.values():
                await self._run_group(group)

    async def _run_group(self, group: list) -> None:
        """One backend call for the group; if it fails, each member runs alone, so only the culprit fails."""
        try:
            await self._run(group)
        except Exception as e:
            if len(group) == 1:
                if not group[0][2].done():
                    group[0][2].set_exception(e)
                return
            for item in group:
                await self._run_group([item])

    async def _run(self, group: list) -> None:
        loop = asyncio.get_running_loop()
        conversations = [c for convs, _, _ in group for c in convs]
        owner = [k for k, (convs, _, _) in enumerate(group) for _ in convs]  # row -> its request
        rows: list[list] = [[None] * len(convs) for convs, _, _ in group]
        first = [sum(len(c) for c, _, _ in group[:k]) for k in range(len(group))]

        def deliver(k: int) -> None:
            if not group[k][2].done():
                group[k][2].set_result(rows[k])

        def on_reply(index: int, generation: Generation) -> None:  # in the worker thread, as rows finish
            k = owner[index]
            rows[k][index - first[k]] = generation
            if all(g is not None for g in rows[k]):
                loop.call_soon_threadsafe(deliver, k)

        def keep(index: int) -> bool:
            return not group[owner[index]][2].done()

        generations = await asyncio.to_thread(
            self.backend.generate, conversations, group[0][1], on_reply=on_reply, keep=keep
        )
        for k, (convs, _, future) in enumerate(group):  # backends that reply only at the end
            if not future.done():
                future.set_result(generations[first[k] : first[k] + len(convs)])


def _second_backend(backend):
    """Another hf backend on the same weights (its own prefix cache; PyTorch runs two inference calls at once),
    for the second lane; any other backend is shared."""
    from reasrm.backends.hf import HFBackend

    if type(backend) is HFBackend:
        return HFBackend(backend.model, backend.tokenizer, prefix_cache=backend.prefix_cache)
    return backend


async def _answered(request: Request, future: asyncio.Future):
    """The request's generations; if its client disconnects first, the request is cancelled, so it leaves
    its batch (or never joins one), and nothing is sent back."""
    while True:
        done, _ = await asyncio.wait({future}, timeout=0.25)
        if done:
            return future.result()
        if await request.is_disconnected():
            future.cancel()
            raise HTTPException(status_code=499, detail="the client closed the connection")


async def _body_problem(request: Request) -> str:
    """Why a body that is not JSON FastAPI can read is unreadable, in words."""
    import json

    body = await request.body()
    try:
        json.loads(body)
    except UnicodeDecodeError as e:
        return f"not valid UTF-8 (byte {e.start})"
    except RecursionError:
        return "nested too deeply"
    except ValueError as e:  # JSONDecodeError, and integers longer than Python reads
        return f"not valid JSON ({str(e).split(':')[0]})"
    return "not valid JSON"


def create_app(
    judge: Judge,
    model_name: str,
    api_key: str | None = None,
    max_body_bytes: int = 2_000_000,
    window: float = 0.005,
    packs: list[str] | None = None,
) -> FastAPI:
    """``packs``: the rubric pack ids a request may name (default: those found by id when the server starts,
    ``./rubrics`` and the shipped ones). Over HTTP a rubric is an id from this list, never a path: a client
    must not make the server open a file it names."""
    batcher = Batcher(judge.backend, window)  # /v1/judge's lane
    chatter = Batcher(_second_backend(judge.backend), window)  # /v1/chat/completions' lane
    if chatter.backend is judge.backend:  # a backend that cannot run twice at once: one lane for both
        chatter = batcher
    served = {"chat": 0, "judge": 0}  # requests answered with 200, by endpoint (shown by /health)
    packs = sorted(available_packs() if packs is None else packs)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        tasks = [asyncio.create_task(b.run()) for b in {id(batcher): batcher, id(chatter): chatter}.values()]
        yield
        for task in tasks:
            task.cancel()

    # With a key, the interactive docs and schema are off (they would answer without one); /health stays
    # open for liveness probes, which carry no key (as vLLM's does).
    docs = {} if api_key is None else {"docs_url": None, "redoc_url": None, "openapi_url": None}
    # max_body_size: FastAPI counts the bytes actually read, so a chunked upload cannot slip past it (413).
    app = FastAPI(title="reasrm judge", version="1", lifespan=lifespan, max_body_size=max_body_bytes, **docs)

    async def _authorised(request: Request) -> None:
        if api_key is None:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
            raise HTTPException(status_code=401, detail="missing or wrong API key (Authorization: Bearer KEY)")

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        # The field and the problem, not the input: an input can be what JSON cannot encode (a lone surrogate).
        problems = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in error.errors()]
        return JSONResponse({"detail": problems}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        if error.status_code == 400 and error.detail == "There was an error parsing the body":
            return JSONResponse({"detail": f"body: {await _body_problem(request)}"}, status_code=422)
        return JSONResponse({"detail": error.detail}, status_code=error.status_code, headers=error.headers)

    @app.exception_handler(Exception)
    async def _server_error(request: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"error": {"message": f"{type(error).__name__}: {error}"}}, status_code=500)

    @app.get("/health")
    async def health() -> dict:  # open to anyone: names no file or path of the server's
        return {"status": "ok", "served": served}

    @app.get("/v1/models", dependencies=[Depends(_authorised)])
    async def models() -> dict:
        return {"object": "list", "data": [{"id": model_name, "object": "model", "owned_by": "reasrm"}]}

    @app.post("/v1/chat/completions", dependencies=[Depends(_authorised)])
    async def chat(body: ChatRequest, request: Request) -> dict:
        cap = judge.generation.max_new_tokens  # --max-new-tokens: the default, and the most a request gets
        settings = dataclasses.replace(
            judge.generation,
            max_new_tokens=min(body.max_completion_tokens or body.max_tokens or cap, cap),
            temperature=judge.generation.temperature if body.temperature is None else body.temperature,
            top_p=judge.generation.top_p if body.top_p is None else body.top_p,
            seed=judge.generation.seed if body.seed is None else body.seed,
        )
        conversation = [m.model_dump() for m in body.messages]
        generations = await _answered(request, chatter.submit([conversation] * body.n, settings))
        if generations[0].too_long:
            raise HTTPException(status_code=413, detail=_too_long(generations[0].prompt_tokens))
        stops = [body.stop] if isinstance(body.stop, str) else (body.stop or [])
        choices = []
        for index, g in enumerate(generations):
            text, cut = _apply_stop(g.text, stops)
            length = not cut and g.completion_tokens >= settings.max_new_tokens
            choices.append(
                {
                    "index": index,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "length" if length else "stop",
                }
            )
        prompt_tokens = generations[0].prompt_tokens
        completion_tokens = sum(g.completion_tokens for g in generations)
        served["chat"] += 1
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model_name,
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    @app.post("/v1/judge", dependencies=[Depends(_authorised)])
    async def judge_pair(body: JudgeRequest, request: Request) -> dict:
        if body.rubric is not None and body.rubric not in packs:
            raise HTTPException(
                status_code=422,
                detail=f"rubric: {body.rubric!r} is not a rubric pack id of this server; available: {', '.join(packs)}",
            )
        row = {
            "response_a": body.response_a,
            "response_b": body.response_b,
            "rubric": body.rubric,
            "reference": body.reference,
        }
        if body.prompt is not None:
            row["prompt"] = body.prompt
        else:
            row["context"] = [m.model_dump() for m in body.conversation]
        try:
            batch = judge.prepare([row], both_orders=body.both_orders, seed=body.seed)
        except ReasrmError as e:
            raise HTTPException(status_code=422, detail=str(e).removeprefix("pairs[0]: ")) from None
        generations = await _answered(request, batcher.submit(batch.conversations, judge.generation))
        if any(g.too_long for g in generations):
            raise HTTPException(status_code=413, detail=_too_long(max(g.prompt_tokens for g in generations)))
        (j,) = judge.finish(batch, generations)
        pack = judge.prompt.pack_for(batch.pairs[0])
        served["judge"] += 1
        return {
            "rubric": None if pack is None else {"id": pack.id, "version": pack.version},
            "verdict": j.verdict.choice,
            "status": j.status,
            "flip": j.flip,
            "sections": {k: v for k, v in j.verdict.to_dict().items() if k not in ("choice", "status")},
            "orders": [
                {
                    "order": c.order,
                    "text": c.text,
                    "verdict": c.verdict.choice,
                    "status": c.verdict.status,
                    "prompt_tokens": c.prompt_tokens,
                    "completion_tokens": c.completion_tokens,
                }
                for c in j.calls
            ],
        }

    return app


def _too_long(tokens: int) -> str:
    return (
        f"too_long: the prompt has {tokens} tokens, over the server's limit (--max-prompt-tokens, else the "
        "model's context less the completion room)"
    )


def _apply_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    """The text up to the first stop string, and whether one was found."""
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def serve(judge: Judge, model_name: str, host: str, port: int, api_key: str | None) -> None:
    import uvicorn

    uvicorn.run(create_app(judge, model_name, api_key), host=host, port=port, log_level="info")

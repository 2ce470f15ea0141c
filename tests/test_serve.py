"""`reasrm serve` in a real process on a loopback port, spoken to with the official `openai` client and httpx."""

import json
import shutil
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2 as httpx  # the HTTP client the openai package itself uses
import openai
import pytest

KEY = "test-key"
ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(model, *extra):
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reasrm.cli",
            "serve",
            "--model",
            str(model),
            "--prompt-format",
            "rm-r1-instruct",
            "--port",
            str(port),
            "--api-key",
            KEY,
            "--max-new-tokens",
            "6",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(process.stdout.read().decode())
        try:
            if httpx.get(f"{url}/health", headers={"Authorization": f"Bearer {KEY}"}, timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError("server did not start")


@pytest.fixture(scope="module")
def server(tiny_model):
    process, url = _start(tiny_model)
    yield url, str(tiny_model)
    process.terminate()
    process.wait(timeout=30)


AUTH = {"Authorization": f"Bearer {KEY}"}


def test_openai_client_chat_completions(server):
    server, name = server
    client = openai.OpenAI(base_url=f"{server}/v1", api_key=KEY)
    reply = client.chat.completions.create(model="judge", messages=[{"role": "user", "content": "Hi"}], max_tokens=4)
    assert reply.object == "chat.completion" and len(reply.choices) == 1
    assert isinstance(reply.choices[0].message.content, str) and reply.choices[0].finish_reason in ("stop", "length")
    assert 1 <= reply.usage.completion_tokens <= 4 and reply.usage.prompt_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    several = client.chat.completions.create(
        model="judge", messages=[{"role": "user", "content": "Hi"}], max_tokens=4, n=3, temperature=1.0, seed=1
    )
    assert [c.index for c in several.choices] == [0, 1, 2]
    assert [m.id for m in client.models.list().data] == [name]
    greedy = [
        client.chat.completions.create(model="j", messages=[{"role": "user", "content": "Hey"}], max_tokens=5)
        for _ in range(2)
    ]
    assert greedy[0].choices[0].message.content == greedy[1].choices[0].message.content  # greedy by default


def test_wrong_or_missing_key_is_refused(server):
    server, _ = server
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{server}/v1", api_key="wrong", max_retries=0).models.list()
    assert httpx.get(f"{server}/v1/models").status_code == 401
    body = {"prompt": "q", "response_a": "a", "response_b": "b"}
    assert httpx.post(f"{server}/v1/judge", json=body, headers={"Authorization": "Bearer nope"}).status_code == 401


def test_judge_endpoint_both_orders(server):
    server, _ = server
    body = {"prompt": "What is 2 + 2?", "response_a": "4", "response_b": "5", "both_orders": True}
    reply = httpx.post(f"{server}/v1/judge", json=body, headers=AUTH, timeout=60)
    assert reply.status_code == 200, reply.text
    data = reply.json()
    assert [o["order"] for o in data["orders"]] == ["AB", "BA"]
    assert data["status"] in ("ok", "inconsistent", "missing", "truncated", "malformed", "conflicting")
    assert (data["verdict"] is None) == (data["status"] != "ok")


def test_concurrent_requests_are_batched_without_mixing_replies(server):
    server, _ = server
    bodies = [{"prompt": f"Question {i}?", "response_a": f"answer {i}", "response_b": "no"} for i in range(8)]
    sequential = [httpx.post(f"{server}/v1/judge", json=b, headers=AUTH, timeout=60).json() for b in bodies]
    with ThreadPoolExecutor(8) as pool:
        concurrent = list(
            pool.map(lambda b: httpx.post(f"{server}/v1/judge", json=b, headers=AUTH, timeout=60), bodies)
        )
    assert all(r.status_code == 200 for r in concurrent)
    # Greedy decoding: each reply is its own request's, whatever it was batched with.
    assert [r.json()["orders"][0]["text"] for r in concurrent] == [s["orders"][0]["text"] for s in sequential]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prompt": "q", "response_a": "a"}, "response_b"),
        (
            {"prompt": "q", "conversation": [{"role": "user", "content": "q"}], "response_a": "a", "response_b": "b"},
            "prompt",
        ),
        ({"prompt": "q", "response_a": "a", "response_b": "b", "both_orders": "sometimes"}, "both_orders"),
    ],
)
def test_malformed_bodies_get_422_naming_the_field(server, body, field):
    server, _ = server
    reply = httpx.post(f"{server}/v1/judge", json=body, headers=AUTH)
    assert reply.status_code == 422 and field in reply.text


CHAT = {"messages": [{"role": "user", "content": "Hi"}]}


@pytest.mark.parametrize(
    ("route", "body", "status", "expected"),
    [
        ("chat", {**CHAT, "seed": 1180591620717411303424}, 422, "seed"),
        ("chat", {**CHAT, "seed": -1}, 422, "seed"),
        ("chat", {**CHAT, "temperature": 1e-300}, 422, "must be 0 (greedy) or at least 0.001"),
        ("judge", {"prompt": "q", "response_a": "a", "response_b": "b", "seed": 2**64}, 422, "seed"),
        (
            "chat",
            b'{"messages": [{"role": "user", "content": "\xff"}]}'.replace(b"\\xff", b"\xff"),
            422,
            "not valid UTF-8",
        ),
        ("chat", b'{"messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 422, "body:"),
        ("chat", b'{"messages": [], "max_tokens": ' + b"9" * 5000 + b"}", 422, "body: not valid JSON"),
    ],
)
def test_hostile_bodies_get_a_4xx_naming_the_problem(server, route, body, status, expected):
    """One row per hostile body: the reply is a client error naming the problem, never a 500, and the server
    keeps serving."""
    server, _ = server
    path = {"chat": "/v1/chat/completions", "judge": "/v1/judge"}[route]
    if isinstance(body, bytes):
        reply = httpx.post(f"{server}{path}", content=body, headers={**AUTH, "Content-Type": "application/json"})
    else:
        reply = httpx.post(f"{server}{path}", json=body, headers=AUTH)
    assert reply.status_code == status and expected in reply.text, reply.text[:500]
    assert httpx.get(f"{server}/health").status_code == 200


def test_max_tokens_is_capped_by_the_server(server):
    """The server runs with --max-new-tokens 6: a request for a billion tokens gets at most 6, not a 413."""
    server, _ = server
    reply = httpx.post(f"{server}/v1/chat/completions", json={**CHAT, "max_tokens": 1_000_000_000}, headers=AUTH)
    assert reply.status_code == 200 and reply.json()["usage"]["completion_tokens"] <= 6


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--max-new-tokens", "0"], "--max-new-tokens: must be >= 1, got 0"),
        (["--max-prompt-tokens", "-5"], "--max-prompt-tokens: must be >= 1, got -5"),
        (["--batch-size", "0"], "--batch-size: must be >= 1, got 0"),
        (["--port", "99999"], "--port: must be between 1 and 65535, got 99999"),
        (["--api-key-file", "/nonexistent/key"], "--api-key-file: cannot read a key from /nonexistent/key"),
    ],
)
def test_serve_refuses_settings_it_cannot_serve_with_in_one_line(flags, expected):
    result = subprocess.run([sys.executable, "-m", "reasrm.cli", "serve", *flags], capture_output=True, text=True)
    assert result.returncode == 2 and expected in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_the_api_key_can_come_from_a_file(tiny_model, tmp_path):
    key = tmp_path / "key"
    key.write_text("from-a-file\n")
    process, url = _start(tiny_model, "--api-key-file", str(key))  # the file's key wins over --api-key
    try:
        assert httpx.get(f"{url}/v1/models", headers={"Authorization": "Bearer from-a-file"}).status_code == 200
        assert httpx.get(f"{url}/v1/models", headers=AUTH).status_code == 401
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_bad_chat_request_and_rubric_get_422(server):
    server, _ = server
    reply = httpx.post(f"{server}/v1/chat/completions", json={"messages": [], "max_tokens": 3}, headers=AUTH)
    assert reply.status_code == 422 and "messages" in reply.text
    body = {"prompt": "q", "response_a": "a", "response_b": "b", "rubric": "medical"}
    reply = httpx.post(f"{server}/v1/judge", json=body, headers=AUTH)
    assert reply.status_code == 422 and "rubric" in reply.text


def test_a_rubric_over_http_is_a_pack_id_never_a_path(server, tmp_path):
    """A client cannot make the server open a file: a path gets the same 422 whether or not it exists, and
    nothing of its contents."""
    server, _ = server
    secret = tmp_path / "creds.yaml"
    secret.write_text("id: x\napi_token: hunter2\n")
    replies = {}
    for rubric in (str(secret), str(tmp_path / "absent.yaml"), "../rubrics/chat.yaml", "medical"):
        body = {"prompt": "q", "response_a": "a", "response_b": "b", "rubric": rubric}
        replies[rubric] = httpx.post(f"{server}/v1/judge", json=body, headers=AUTH)
        assert replies[rubric].status_code == 422, rubric
        detail = replies[rubric].json()["detail"]
        assert detail.startswith(f"rubric: {rubric!r} is not a rubric pack id") and "available: chat, code" in detail
        assert "api_token" not in replies[rubric].text and "hunter2" not in replies[rubric].text
    ok = httpx.post(
        f"{server}/v1/judge",
        json={"prompt": "q", "response_a": "a", "response_b": "b", "rubric": "chat"},
        headers=AUTH,
        timeout=60,
    )
    assert ok.status_code == 200 and ok.json()["rubric"]["id"] == "chat"


def test_health_is_open_and_docs_are_off_under_a_key(server):
    server, name = server
    reply = httpx.get(f"{server}/health")  # liveness probes carry no key
    health = reply.json()
    assert health["status"] == "ok" and set(health["served"]) == {"chat", "judge"}
    assert name not in reply.text  # the model's path on the server is nobody's business without a key
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert httpx.get(f"{server}{path}").status_code == 404, path


def test_oversized_body_gets_413_with_or_without_content_length(server):
    server, _ = server
    body = {"prompt": "q" * 3_000_000, "response_a": "a", "response_b": "b"}
    assert httpx.post(f"{server}/v1/judge", json=body, headers=AUTH).status_code == 413

    def chunks(size, piece=10_000):  # Transfer-Encoding: chunked, no Content-Length to trust
        yield b'{"prompt": "'
        for _ in range(size // piece):
            yield b"q " * (piece // 2)
        yield b'", "response_a": "a", "response_b": "b"}'

    headers = {**AUTH, "content-type": "application/json"}
    for size in (3_000_000, 50_000_000):
        reply = httpx.post(f"{server}/v1/judge", content=chunks(size), headers=headers, timeout=60)
        assert reply.status_code == 413, (size, reply.text[:200])
    small = httpx.post(f"{server}/v1/judge", content=chunks(2_000, 1_000), headers=headers, timeout=60)
    assert small.status_code == 200, small.text[:200]


def test_a_bad_request_fails_alone_not_with_its_batch(server):
    server, _ = server
    surrogate = b'{"messages": [{"role": "user", "content": "hi \\ud800"}], "max_tokens": 3}'
    judge_body = {"prompt": "What is 2 + 2?", "response_a": "4", "response_b": "5"}
    with ThreadPoolExecutor(8) as pool:
        bad = pool.submit(
            httpx.post,
            f"{server}/v1/chat/completions",
            content=surrogate,
            timeout=60,
            headers={**AUTH, "content-type": "application/json"},
        )
        good = [
            pool.submit(httpx.post, f"{server}/v1/judge", json=judge_body, headers=AUTH, timeout=60) for _ in range(7)
        ]
        replies = [f.result() for f in good]
    assert bad.result().status_code == 422, bad.result().text
    assert "messages" in bad.result().text and "surrogate" in bad.result().text
    assert [r.status_code for r in replies] == [200] * 7


def test_a_failing_batch_is_retried_member_by_member(tiny_model):
    """A request that passes validation and still breaks the backend call fails alone: its batch mates are
    retried one by one and get the replies they would have got on their own."""
    import asyncio

    from reasrm.backends import GenerationConfig
    from reasrm.backends.hf import HFBackend
    from reasrm.serve import Batcher

    class Fragile(HFBackend):  # the real backend, failing on one marked conversation
        def generate(self, conversations, settings, **hooks):
            if any("POISON" in m["content"] for c in conversations for m in c):
                raise RuntimeError("the backend broke")
            return super().generate(conversations, settings, **hooks)

    backend, settings = Fragile.load(str(tiny_model)), GenerationConfig(max_new_tokens=4)
    texts = ["one", "POISON", "two", "three"]

    async def main():
        batcher = Batcher(backend, window=0.2)
        task = asyncio.create_task(batcher.run())
        calls = [batcher.generate([[{"role": "user", "content": t}]], settings) for t in texts]
        results = await asyncio.gather(*calls, return_exceptions=True)
        task.cancel()
        return results

    results = asyncio.run(main())
    assert isinstance(results[1], RuntimeError) and str(results[1]) == "the backend broke"
    alone = backend.generate([[{"role": "user", "content": t}] for t in ("one", "two", "three")], settings)
    assert [r[0].text for r in (results[0], results[2], results[3])] == [g.text for g in alone]


def test_generation_error_is_a_500_and_the_server_keeps_serving(tiny_model, tmp_path):
    broken = tmp_path / "no-template"
    shutil.copytree(tiny_model, broken)
    (broken / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((broken / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (broken / "tokenizer_config.json").write_text(json.dumps(config))
    process, url = _start(broken)
    try:
        reply = httpx.post(
            f"{url}/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "hi"}]},
            headers=AUTH,
            timeout=60,
        )
        assert reply.status_code == 500 and "chat" in reply.json()["error"]["message"].lower()
        assert httpx.get(f"{url}/health", headers=AUTH).status_code == 200
        assert httpx.get(f"{url}/v1/models", headers=AUTH).json()["data"][0]["id"] == str(broken)
    finally:
        process.terminate()
        process.wait(timeout=30)


# --- the openai backend, against `reasrm serve` -----------------------------------------------------

PAIRS = [{"id": f"p{i}", "prompt": f"What is {i} + 1?", "chosen": str(i + 1), "rejected": str(i + 2)} for i in range(3)]


def test_openai_backend_judges_like_the_local_model(server, tiny_model):
    from reasrm import Judge
    from reasrm.backends import GenerationConfig

    url, name = server
    settings = GenerationConfig(max_new_tokens=6)
    remote = Judge.from_pretrained(
        name, backend="openai", prompt_format="rm-r1-instruct", generation=settings, base_url=f"{url}/v1", api_key=KEY
    )
    local = Judge.from_pretrained(str(tiny_model), prompt_format="rm-r1-instruct", generation=settings)
    got, expected = remote.judge(PAIRS, both_orders=True), local.judge(PAIRS, both_orders=True)
    assert [c.text for j in got for c in j.calls] == [c.text for j in expected for c in j.calls]  # greedy, same model
    assert [j.status for j in got] == [j.status for j in expected]
    assert all(c.prompt_tokens > 0 and c.error is None for j in got for c in j.calls)


def test_stopped_server_retries_then_reports_failed_pairs(tiny_model):
    from reasrm import Judge
    from reasrm.backends.openai import OpenAIBackend
    from reasrm.prompts import JudgePrompt

    process, url = _start(tiny_model)
    process.terminate()  # the server goes away before the run
    process.wait(timeout=30)
    backend = OpenAIBackend("judge", f"{url}/v1", KEY, max_retries=2, backoff=0.01, timeout=5)
    judge = Judge(backend, JudgePrompt.create("rm-r1-instruct"))
    started = time.monotonic()
    judgements = judge.judge(PAIRS)
    assert [j.status for j in judgements] == ["failed"] * 3  # reported, not dropped
    assert all("APIConnectionError after 3 attempts" in j.calls[0].error for j in judgements)
    assert time.monotonic() - started < 30


def test_wrong_key_fails_at_once_without_retrying(server):
    from reasrm import Judge
    from reasrm.errors import ReasrmError

    url, name = server
    judge = Judge.from_pretrained(
        name,
        backend="openai",
        prompt_format="rm-r1-instruct",
        base_url=f"{url}/v1",
        api_key="wrong",
        max_retries=50,
        backoff=1.0,
    )
    started = time.monotonic()
    with pytest.raises(ReasrmError, match="refused the API key"):
        judge.judge(PAIRS)
    assert time.monotonic() - started < 5  # 50 retries with 1 s backoff would take minutes


def test_a_prompt_over_the_limit_gets_413_and_fails_alone(tiny_model):
    process, url = _start(tiny_model, "--max-prompt-tokens", "1500")
    try:
        long = {"prompt": "word " * 2000, "response_a": "a", "response_b": "b"}
        short = {"prompt": "What is 2 + 2?", "response_a": "4", "response_b": "5"}
        with ThreadPoolExecutor(4) as pool:
            replies = list(
                pool.map(
                    lambda b: httpx.post(f"{url}/v1/judge", json=b, headers=AUTH, timeout=60),
                    [short, long, short, long],
                )
            )
        assert [r.status_code for r in replies] == [200, 413, 200, 413]
        assert replies[1].json()["detail"].startswith("too_long: the prompt has ")
        chat = httpx.post(
            f"{url}/v1/chat/completions",
            headers=AUTH,
            timeout=60,
            json={"messages": [{"role": "user", "content": "word " * 2000}]},
        )
        assert chat.status_code == 413 and "too_long" in chat.text
    finally:
        process.terminate()
        process.wait(timeout=30)


def _served(url: str) -> int:
    return httpx.get(f"{url}/health").json()["served"]["chat"]


def test_reply_cache_keeps_every_reply_and_no_failure(server, tmp_path):
    """The teacher's reply cache in front of the openai backend and a real server: a second call over the
    same conversations is answered from the cache (the server counts no request); a call the backend
    gave up on is not stored, so it is asked again."""
    from reasrm.backends import GenerationConfig
    from reasrm.backends.cache import CachedBackend
    from reasrm.backends.openai import OpenAIBackend

    url, name = server
    conversations = [[{"role": "user", "content": f"Question {i}?"}] for i in range(3)]
    settings = GenerationConfig(max_new_tokens=6)
    cached = CachedBackend(OpenAIBackend(name, f"{url}/v1", KEY), tmp_path / "cache.sqlite", "openai", name)
    before = _served(url)
    first = cached.generate(conversations, settings)
    assert _served(url) - before == 3 and cached.stats.requests == 3
    again = cached.generate(conversations, settings)
    assert _served(url) - before == 3 and cached.stats.hits == 3  # no request reached the server
    assert [g.text for g in again] == [g.text for g in first] and all(g.cached for g in again)
    sampled = cached.generate(conversations[:1], GenerationConfig(max_new_tokens=6, temperature=1.0, seed=7))
    assert not sampled[0].cached and _served(url) - before == 4  # other sampling settings: another reply

    dead = OpenAIBackend(name, f"http://127.0.0.1:{_free_port()}/v1", KEY, max_retries=1, backoff=0.01)
    unreachable = CachedBackend(dead, tmp_path / "cache.sqlite", "openai", name)
    (failed,) = unreachable.generate([[{"role": "user", "content": "Question 9?"}]], settings)
    assert failed.error is not None and failed.retries == 1
    assert (unreachable.stats.requests, unreachable.stats.failures, unreachable.stats.retries) == (1, 1, 1)
    (asked,) = cached.generate([[{"role": "user", "content": "Question 9?"}]], settings)
    assert asked.error is None and not asked.cached  # the failure was not stored


@pytest.mark.slow
def test_teacher_killed_mid_run_resends_only_unanswered_requests(tiny_model, tmp_path):
    """`reasrm teacher` with the openai backend against a real `reasrm serve`: killed with SIGKILL mid-run
    and restarted, it sends only the requests whose replies were not stored, and writes the same
    chains.jsonl as an uninterrupted run; a run over a complete cache sends none."""
    import os
    import signal
    import sqlite3

    process, url = _start(tiny_model, "--batch-size", "1")  # each request alone: greedy replies are exact
    env = {**os.environ, "REASRM_API_KEY": KEY}

    def teacher(output, *extra):
        return [
            sys.executable,
            "-m",
            "reasrm.cli",
            "teacher",
            "stages/distill.yaml",
            "teacher.backend=openai",
            f"teacher.base_url={url}/v1",
            "teacher.model=judge",
            "teacher.concurrency=2",
            "teacher.generation.max_new_tokens=48",
            "limit=40",
            "both_orders=false",  # one request per pair and pass
            f"output={output}",
            *extra,
        ]

    def stored(output) -> int:
        try:
            with sqlite3.connect(output / "teacher_cache.sqlite") as db:
                return db.execute("SELECT count(*) FROM replies").fetchone()[0]
        except sqlite3.OperationalError:  # the run has not created its table yet
            return 0

    try:
        before = _served(url)
        subprocess.run(teacher(tmp_path / "whole"), env=env, check=True, capture_output=True, cwd=ROOT)
        whole = _served(url) - before
        assert whole == 80  # the random model verifies nothing: 40 pairs x 2 passes

        killed = subprocess.Popen(
            teacher(tmp_path / "killed"), env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and killed.poll() is None:
            if (tmp_path / "killed" / "teacher_cache.sqlite").exists() and stored(tmp_path / "killed") >= 10:
                break
            time.sleep(0.01)
        assert killed.poll() is None, "the teacher ended before it could be killed"
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        answered = stored(tmp_path / "killed")
        assert 10 <= answered < whole
        before = -1
        while before != _served(url):  # requests the killed run left in flight finish on the server first
            before = _served(url)
            time.sleep(1)
        subprocess.run(teacher(tmp_path / "killed", "resume=true"), env=env, check=True, capture_output=True, cwd=ROOT)
        assert _served(url) - before == whole - answered  # only the unanswered requests went out again
        report = json.loads((tmp_path / "killed" / "teacher_report.json").read_text())
        assert report["this_run"]["requests"] == whole - answered
        assert (tmp_path / "killed" / "chains.jsonl").read_text() == (tmp_path / "whole" / "chains.jsonl").read_text()

        before = _served(url)
        cache = f"teacher.cache={tmp_path / 'whole' / 'teacher_cache.sqlite'}"
        subprocess.run(teacher(tmp_path / "again", cache), env=env, check=True, capture_output=True, cwd=ROOT)
        assert _served(url) - before == 0  # a complete cache: zero requests
        assert (tmp_path / "again" / "chains.jsonl").read_text() == (tmp_path / "whole" / "chains.jsonl").read_text()
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_request_whose_client_is_gone_leaves_its_batch_and_the_rest_go_on(tiny_model):
    """The real hf backend, a batch of two long requests: one is cancelled (its client disconnected) after its
    first tokens; it leaves the batch at the next decode step while the other runs to its length."""
    import asyncio

    from reasrm.backends import GenerationConfig
    from reasrm.backends.hf import HFBackend
    from reasrm.serve import Batcher

    backend, settings = HFBackend.load(str(tiny_model)), GenerationConfig(max_new_tokens=300)
    returned = []

    class Watched(HFBackend):
        def generate(self, conversations, settings, **hooks):
            returned.append(super().generate(conversations, settings, **hooks))
            return returned[-1]

    watched = Watched(backend.model, backend.tokenizer)
    seen = []

    async def main():
        batcher = Batcher(watched, window=0.2)
        task = asyncio.create_task(batcher.run())
        gone = batcher.submit([[{"role": "user", "content": "first"}]], settings)
        stays = batcher.submit([[{"role": "user", "content": "second"}]], settings)
        await asyncio.sleep(0.5)  # inside the 300-token batch by now
        gone.cancel()
        seen.append(await stays)
        task.cancel()

    asyncio.run(main())
    (generations,) = returned
    cancelled = [g for g in generations if g.error == "cancelled"]
    assert len(cancelled) == 1 and cancelled[0].completion_tokens < 300
    assert seen[0][0].error is None


def test_judging_and_chat_run_in_lanes_of_their_own(tiny_model):
    """A long chat generation must not delay a verdict: with the hf backend each route has its own worker and
    its own backend on the same weights."""
    from reasrm import Judge
    from reasrm.backends.openai import OpenAIBackend
    from reasrm.serve import _second_backend

    judge = Judge.from_pretrained(str(tiny_model), prompt_format="compact")
    other = _second_backend(judge.backend)
    assert other is not judge.backend and other.model is judge.backend.model  # same weights, its own prefix cache
    remote = OpenAIBackend.load("judge", base_url="http://127.0.0.1:9/v1", api_key="x")
    assert _second_backend(remote) is remote  # a backend that cannot run twice at once: one lane

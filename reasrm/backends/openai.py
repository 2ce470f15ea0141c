"""The OpenAI-compatible backend: any server speaking chat completions (``reasrm serve``, vLLM, others).

Uses the official async client with a concurrency limit and a per-request timeout. A call that hits a
rate limit (429), a server error (5xx), a timeout or a refused connection is retried with exponential
backoff and jitter; once the retry budget is spent it comes back as a failed generation (the judge
reports the pair with status ``failed``: never silently dropped). A wrong API key or a bad request is
an error at once, for the whole run: retrying it would only repeat it.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Callable, Sequence

from reasrm.backends.generation import Generation, GenerationConfig
from reasrm.errors import ReasrmError


class OpenAIBackend:
    def __init__(
        self,
        model: str,
        base_url: str,
        api_key: str | None = None,
        concurrency: int = 8,
        timeout: float = 120.0,
        max_retries: int = 4,
        backoff: float = 0.5,
    ):
        self.model, self.base_url, self.api_key = model, base_url, api_key
        self.concurrency, self.timeout, self.max_retries, self.backoff = concurrency, timeout, max_retries, backoff

    @classmethod
    def load(
        cls, model: str | None, base_url: str | None = None, api_key: str | None = None, **kwargs
    ) -> OpenAIBackend:
        base_url = base_url or os.environ.get("OPENAI_BASE_URL")
        if not base_url:
            raise ReasrmError("the openai backend needs base_url (e.g. http://127.0.0.1:8000/v1) or $OPENAI_BASE_URL")
        if model is None:
            raise ReasrmError("the openai backend needs the served model's name (--model)")
        key = api_key or os.environ.get("REASRM_API_KEY") or os.environ.get("OPENAI_API_KEY") or "none"
        return cls(model, base_url, key, **kwargs)

    def generate(
        self,
        conversations: Sequence[list[dict]],
        settings: GenerationConfig,
        on_batch: Callable[[int], None] | None = None,
        on_reply: Callable[[int, Generation], None] | None = None,
        keep: Callable[[int], bool] | None = None,  # a call in flight is not stopped here
    ) -> list[Generation]:
        return asyncio.run(self._generate_all(list(conversations), settings, on_batch, on_reply))

    async def _generate_all(self, conversations, settings, on_batch, on_reply) -> list[Generation]:
        import openai

        limit = asyncio.Semaphore(self.concurrency)
        async with openai.AsyncOpenAI(
            base_url=self.base_url, api_key=self.api_key, max_retries=0, timeout=self.timeout
        ) as client:

            async def one(index, conversation):
                async with limit:
                    generation = await self._call(client, conversation, settings)
                if on_reply is not None:
                    on_reply(index, generation)
                if on_batch is not None:
                    on_batch(1)
                return generation

            tasks = [asyncio.create_task(one(i, c)) for i, c in enumerate(conversations)]
            try:
                return list(await asyncio.gather(*tasks))
            except BaseException:
                for task in tasks:
                    task.cancel()
                raise

    async def _call(self, client, conversation, settings: GenerationConfig) -> Generation:
        import openai

        started = time.perf_counter()
        for attempt in range(self.max_retries + 1):
            try:
                reply = await client.chat.completions.create(
                    model=self.model,
                    messages=conversation,
                    max_tokens=settings.max_new_tokens,
                    temperature=settings.temperature,
                    top_p=settings.top_p,
                    seed=settings.seed,
                )
            except (openai.AuthenticationError, openai.PermissionDeniedError) as e:
                raise ReasrmError(f"{self.base_url}: the server refused the API key ({e.status_code})") from None
            except (openai.BadRequestError, openai.NotFoundError, openai.UnprocessableEntityError) as e:
                raise ReasrmError(f"{self.base_url}: request refused ({e.status_code}): {e.message}") from None
            except (
                openai.RateLimitError,
                openai.InternalServerError,
                openai.APITimeoutError,
                openai.APIConnectionError,
            ) as e:
                if attempt == self.max_retries:
                    seconds = time.perf_counter() - started
                    error = f"{type(e).__name__} after {attempt + 1} attempts: {e}"
                    return Generation("", 0, 0, seconds, error=error, retries=attempt)
                await asyncio.sleep(self.backoff * 2**attempt * (0.5 + random.random()))
                continue
            usage = reply.usage
            text = reply.choices[0].message.content or ""
            return Generation(
                text,
                usage.prompt_tokens if usage else 0,
                usage.completion_tokens if usage else 0,
                time.perf_counter() - started,
                retries=attempt,
            )
        raise AssertionError("unreachable")

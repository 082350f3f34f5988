"""Dynamic batching for a model server: collect concurrent requests, run them as one padded batch, answer each.

A model does nearly the same work for one row as for several when the work per row is small: weights are
read once per batch, and every operator's fixed cost (Python dispatch, a kernel launch on a GPU) is paid
once. A server that runs each request alone pays those costs per request. :class:`Batcher` keeps a
**bounded** queue: a worker takes the first waiting job, adds more until ``max_batch`` rows or
``max_wait_ms`` have passed, runs the batch in a worker thread (the event loop keeps accepting and
rejecting requests meanwhile) and sets each job's result. A full queue raises :class:`QueueFull` at once,
which the server answers with 503 + Retry-After: a client learns to back off instead of waiting forever.

:func:`classify_batch` is the classifier's batch (right-padded, like
:meth:`llmguide.inference.Classifier.predict_proba`); :func:`generate_batch` decodes several prompts
together through the KV cache (left-padded, like :func:`llmguide.generate.generate`), each row with its own
temperature, top-p, seed, stop strings and token budget, and streams each row's text as it grows.

Shapes: B rows in a batch, T longest row, V vocab size, K classes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from llmguide.classify import collate, pad_id
from llmguide.generate import sample_next


class QueueFull(Exception):
    """The batcher's queue holds ``max_queue`` jobs: answer 503 and let the client retry later."""


@dataclass
class Job:
    """One request's work: ``payload`` for the batch function, ``size`` rows, and where its answer goes."""

    payload: Any
    size: int
    future: asyncio.Future
    cancelled: bool = False  # set when the client went away: the batch function may skip the row


class Batcher:
    """A bounded queue of jobs and one worker that runs them in batches.

    Args:
        run: the batch function ``run(payloads) -> results`` (same order); runs in a worker thread.
        max_batch: most rows per call (a job of more rows runs alone).
        max_wait_ms: how long the first job of a batch waits for others to join.
        max_queue: most waiting jobs; past it :meth:`submit` raises :class:`QueueFull`.
        on_batch: called with each batch's row count (metrics).
    """

    def __init__(self, run: Callable[[list[Any]], list[Any]], max_batch: int = 32, max_wait_ms: float = 5.0,
                 max_queue: int = 256, on_batch: Callable[[int], None] | None = None) -> None:
        if max_batch < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError(f"need max_batch >= 1, max_queue >= 1, max_wait_ms >= 0; got {max_batch}, "
                             f"{max_queue}, {max_wait_ms}")
        self.run, self.max_batch, self.max_wait = run, max_batch, max_wait_ms / 1000
        self.max_queue, self.on_batch = max_queue, on_batch
        self._queue: asyncio.Queue[Job] | None = None
        self._held: Job | None = None  # a job that did not fit the previous batch
        self._task: asyncio.Task | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmguide-batch")

    @property
    def depth(self) -> int:
        """Jobs waiting (not yet in a running batch)."""
        return (self._queue.qsize() if self._queue is not None else 0) + (self._held is not None)

    def start(self) -> None:
        """Start the worker on the running event loop."""
        self._queue = asyncio.Queue(maxsize=self.max_queue)
        self._task = asyncio.get_running_loop().create_task(self._work())

    async def stop(self) -> None:
        """Stop the worker; waiting jobs fail with :class:`QueueFull` (the server is shutting down)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        while self._queue is not None and not self._queue.empty():
            job = self._queue.get_nowait()
            if not job.future.done():
                job.future.set_exception(QueueFull("the server is shutting down"))
        self._pool.shutdown(wait=False)

    def submit(self, payload: Any, size: int = 1) -> Job:
        """Queue a job of ``size`` rows; its ``future`` gets the result. Raises QueueFull when full."""
        if self._queue is None:
            raise RuntimeError("the batcher is not started: call start() inside the event loop")
        job = Job(payload, size, asyncio.get_running_loop().create_future())
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            raise QueueFull(f"{self.max_queue} requests are already waiting") from None
        return job

    async def _next_batch(self) -> list[Job]:
        first = self._held or await self._queue.get()
        self._held = None
        batch, rows = [first], first.size
        deadline = asyncio.get_running_loop().time() + self.max_wait
        while rows < self.max_batch:
            try:  # take what is already waiting at once; wait only for the rest of max_wait_ms
                job = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self._queue.get(), left)
                except TimeoutError:
                    break
            if rows + job.size > self.max_batch:
                self._held = job  # first in the next batch: order is kept
                break
            batch.append(job)
            rows += job.size
        return batch

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [job for job in await self._next_batch() if not job.future.done()]
            if not batch:
                continue
            if self.on_batch is not None:
                self.on_batch(sum(job.size for job in batch))
            try:
                results = await loop.run_in_executor(self._pool, self.run, [job for job in batch])
            except Exception as err:  # noqa: BLE001 - the error belongs to these requests, not the worker
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(err)
                continue
            for job, result in zip(batch, results, strict=True):
                if not job.future.done():
                    job.future.set_result(result)


# ---------------------------------------------------------------- the classifier's batch

def length_chunks(lengths: Sequence[int], max_rows: int, max_tokens: int) -> list[list[int]]:
    """Group row indices into forward passes: sorted by length, each pass at most ``max_rows`` rows and at
    most ``max_tokens`` padded tokens (rows x its longest row), so short texts do not pad to a long one's length.

    Returns:
        Lists of indices into ``lengths``, shortest rows first.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    chunks: list[list[int]] = []
    for i in order:
        if chunks and len(chunks[-1]) < max_rows and (len(chunks[-1]) + 1) * lengths[i] <= max_tokens:
            chunks[-1].append(i)  # sorted: row i is the longest of its chunk so far
        else:
            chunks.append([i])
    return chunks


@torch.inference_mode()
def classify_batch(model: torch.nn.Module, jobs: Sequence[Job], pad_id: int, max_rows: int,
                   max_tokens: int = 1024) -> list[np.ndarray]:
    """Class probabilities for every text of every job, in padded forward passes of similar-length texts.

    Args:
        model: a GPTClassifier in eval mode.
        jobs: each ``payload`` a list of (L_i,) token-id tensors.
        pad_id: the padding id (hidden by the attention mask).
        max_rows: texts per forward pass.
        max_tokens: padded tokens per forward pass (see :func:`length_chunks`).
    Returns:
        One (N_job, K) array per job.
    """
    ids = [x for job in jobs for x in job.payload]
    device = next(model.parameters()).device
    probs = torch.empty(len(ids), model.n_classes)
    for rows in length_chunks([len(x) for x in ids], max_rows, max_tokens):
        batch = collate([{"idx": ids[i]} for i in rows], pad_id=pad_id)  # right padding, as in fine-tuning
        logits, _ = model(batch["idx"].to(device), batch["attention_mask"].to(device))  # (B, K)
        probs[rows] = logits.float().softmax(-1).cpu()
    out, start = [], 0
    for job in jobs:
        out.append(probs[start:start + len(job.payload)].numpy())
        start += len(job.payload)
    return out


# ---------------------------------------------------------------- the language model's batch

@dataclass
class GenRequest:
    """One completion: prompt ids and its decoding settings; ``emit(text)`` receives each new piece."""

    ids: list[int]
    max_tokens: int
    temperature: float = 1.0
    top_p: float | None = None
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    emit: Callable[[str], None] | None = None


@dataclass
class _Row:
    req: GenRequest
    generator: torch.Generator | None
    new: list[int] = field(default_factory=list)
    text: str = ""  # decoded so far, cut at a stop string
    sent: int = 0  # characters already emitted
    finish: str | None = None  # "length" | "stop" | "cancelled"


def _visible(text: str, stops: Sequence[str]) -> tuple[str, int, bool]:
    """``(text cut at the first stop string, characters safe to emit now, stopped)``.

    Characters that could be the start of a stop string are held back until the next token shows they
    are not, so a streamed client never sees text that the non-streamed answer does not contain.
    """
    hits = [i for i in (text.find(s) for s in stops) if i >= 0]
    if hits:
        return text[:min(hits)], min(hits), True
    safe = len(text)
    for s in stops:  # hold back a suffix that is a prefix of a stop string
        for k in range(min(len(s) - 1, len(text)), 0, -1):
            if text.endswith(s[:k]):
                safe = min(safe, len(text) - k)
                break
    while safe > 0 and text[safe - 1] == "\ufffd":  # a byte-level token may end inside a character
        safe -= 1
    return text, safe, False


def _step_rows(rows: list[_Row], jobs: Sequence[Job], nxt: Tensor, tokenizer: Any) -> None:
    for row, job, token in zip(rows, jobs, nxt.tolist(), strict=True):
        if row.finish is not None:
            continue
        if job.cancelled:
            row.finish = "cancelled"
            continue
        row.new.append(token)
        row.text, safe, stopped = _visible(tokenizer.decode(row.new), row.req.stop)
        if stopped:
            row.finish = "stop"
            safe = len(row.text)
        elif len(row.new) >= row.req.max_tokens:
            row.finish = "length"
            safe = len(row.text)
        if safe > row.sent and row.req.emit is not None:
            row.req.emit(row.text[row.sent:safe])
        row.sent = max(row.sent, safe)


def _sample(logits: Tensor, rows: list[_Row]) -> Tensor:
    nxt = logits.argmax(-1)  # (B,) greedy rows keep this
    for i, row in enumerate(rows):
        if row.finish is None and row.req.temperature > 0:  # each row its own settings and random stream
            nxt[i] = sample_next(logits[i:i + 1], row.req.temperature, None, row.req.top_p, row.generator)[0]
    return nxt


@torch.inference_mode()
def generate_batch(model: torch.nn.Module, tokenizer: Any, jobs: Sequence[Job]) -> list[dict[str, Any]]:
    """Decode several completions together, one token per row per step, through the KV cache.

    Prompts are left-padded so every row's next token is at the same last position (as in
    :func:`llmguide.generate.generate`, whose greedy and seeded output a row alone reproduces exactly).

    Args:
        model: a GPT in eval mode.
        tokenizer: decodes the new ids.
        jobs: each ``payload`` a :class:`GenRequest` with 1 <= len(ids) <= block_size.
    Returns:
        Per job ``{"text", "finish_reason", "prompt_tokens", "completion_tokens"}``.
    """
    device = next(model.parameters()).device
    reqs = [job.payload for job in jobs]
    rows = [_Row(r, None if r.seed is None or r.temperature == 0 else
                 torch.Generator(device=device).manual_seed(r.seed)) for r in reqs]
    for row in rows:
        if row.req.max_tokens == 0:
            row.finish = "length"
    batch = collate([{"idx": torch.tensor(r.ids)} for r in reqs], pad_id=pad_id(tokenizer), padding_side="left")
    ids = batch["idx"].to(device)  # (B, T)
    mask = None if bool(batch["attention_mask"].all()) else batch["attention_mask"].to(device)
    block, B = model.config.block_size, len(reqs)
    caches, todo, out = model.new_kv_caches(), ids, []
    ones = torch.ones(B, 1, dtype=torch.long, device=device)
    while any(row.finish is None for row in rows):
        if caches is not None and len(caches[0]) + todo.size(1) > block:
            caches = None  # the window is full: recompute on the last `block` tokens from now on (as generate)
        if caches is None:
            window = torch.cat([ids, *out], dim=1)[:, -block:]  # (B, <= block)
            logits, _ = model(window, attention_mask=None if mask is None else mask[:, -block:])
        else:
            logits, _ = model(todo, attention_mask=mask, kv_caches=caches)  # (B, 1, V): the last position only
        nxt = _sample(logits[:, -1], rows)  # (B,)
        _step_rows(rows, jobs, nxt, tokenizer)
        todo = nxt.unsqueeze(1)  # (B, 1)
        out.append(todo)
        if mask is not None:
            mask = torch.cat([mask, ones], dim=1)
    return [{"text": row.text, "finish_reason": row.finish, "prompt_tokens": len(row.req.ids),
             "completion_tokens": len(row.new)} for row in rows]


def thread_safe_emitter(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue) -> Callable[[str], None]:
    """An ``emit`` for :class:`GenRequest` that hands each piece from the worker thread to an asyncio queue."""
    def emit(piece: str) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, piece)

    return emit

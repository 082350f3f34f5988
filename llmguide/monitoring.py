"""Watching a served model: Prometheus metrics, and the opt-in log that loops served texts and user feedback
back into data.

:class:`Metrics` counts requests by endpoint and status, rejections by a full queue, and keeps latency and
batch-size histograms, rendered in Prometheus' text format at ``GET /metrics`` (:class:`MetricsMiddleware`
times every answer to its last byte, streams included). :class:`FeedbackLog` appends one JSON line per
classified text and one per user label; :func:`read_feedback` turns the labelled ones into new training
data and :func:`served_texts` gives what was served, for a drift check (notebook 07). The service itself is
:mod:`llmguide.serve`.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


# ---------------------------------------------------------------- metrics (Prometheus text format)

class Metrics:
    """Counters and histograms, updated from the event loop and the batch threads, rendered as Prometheus text."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: Counter = Counter()  # (endpoint, status)
        self.rejected: Counter = Counter()  # endpoint -> 503s from a full queue
        self.latency: dict[str, list] = {}  # endpoint -> [bucket counts..., sum, count]
        self.batch: dict[str, list] = {}  # model -> [bucket counts..., sum, count]
        self.tokens: Counter = Counter()  # model -> generated tokens

    @staticmethod
    def _observe(table: dict, key: str, buckets: Sequence[float], value: float) -> None:
        row = table.setdefault(key, [0] * len(buckets) + [0.0, 0])
        for i, upper in enumerate(buckets):
            row[i] += value <= upper
        row[-2] += value
        row[-1] += 1

    def request(self, endpoint: str, status: int, seconds: float) -> None:
        with self.lock:
            self.requests[endpoint, status] += 1
            self._observe(self.latency, endpoint, LATENCY_BUCKETS, seconds)

    def batch_size(self, model: str, rows: int) -> None:
        with self.lock:
            self._observe(self.batch, model, BATCH_BUCKETS, rows)

    @staticmethod
    def _histogram(name: str, label: str, table: dict, buckets: Sequence[float]) -> list[str]:
        lines = [f"# TYPE {name} histogram"]
        for key, row in sorted(table.items()):
            for upper, n in zip(buckets, row, strict=False):
                lines.append(f'{name}_bucket{{{label}="{key}",le="{upper}"}} {n}')
            lines += [f'{name}_bucket{{{label}="{key}",le="+Inf"}} {row[-1]}',
                      f'{name}_sum{{{label}="{key}"}} {row[-2]:.6f}', f'{name}_count{{{label}="{key}"}} {row[-1]}']
        return lines

    def render(self, queue_depth: dict[str, int]) -> str:
        """The metrics page: one ``# TYPE`` line per metric, then its samples."""
        with self.lock:
            lines = ["# TYPE llmguide_requests_total counter"]
            lines += [f'llmguide_requests_total{{endpoint="{e}",status="{s}"}} {n}'
                      for (e, s), n in sorted(self.requests.items())]
            lines.append("# TYPE llmguide_request_errors_total counter")
            errors = Counter()
            for (e, s), n in self.requests.items():
                errors[e] += n if s >= 400 else 0
            lines += [f'llmguide_request_errors_total{{endpoint="{e}"}} {n}' for e, n in sorted(errors.items())]
            lines.append("# TYPE llmguide_rejected_total counter")
            lines += [f'llmguide_rejected_total{{endpoint="{e}"}} {n}' for e, n in sorted(self.rejected.items())]
            lines += self._histogram("llmguide_request_seconds", "endpoint", self.latency, LATENCY_BUCKETS)
            lines += self._histogram("llmguide_batch_rows", "model", self.batch, BATCH_BUCKETS)
            lines.append("# TYPE llmguide_generated_tokens_total counter")
            lines += [f'llmguide_generated_tokens_total{{model="{m}"}} {n}' for m, n in sorted(self.tokens.items())]
        lines.append("# TYPE llmguide_queue_depth gauge")
        lines += [f'llmguide_queue_depth{{model="{m}"}} {d}' for m, d in sorted(queue_depth.items())]
        return "\n".join(lines) + "\n"


class MetricsMiddleware:
    """Counts every answer by endpoint and status, and times it to its last byte (streams included)."""

    def __init__(self, app: Any, metrics: Metrics, endpoints: Sequence[str]) -> None:
        self.app, self.metrics, self.endpoints = app, metrics, frozenset(endpoints)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        endpoint = scope["path"] if scope["path"] in self.endpoints else "other"  # bounded label values
        start, status = time.perf_counter(), [500]

        async def timed_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.metrics.request(endpoint, status[0], time.perf_counter() - start)

        try:
            await self.app(scope, receive, timed_send)
        except Exception:
            self.metrics.request(endpoint, 500, time.perf_counter() - start)
            raise


# ---------------------------------------------------------------- feedback log (opt-in)

class FeedbackLog:
    """Append-only JSONL: one ``{"kind": "request", ...}`` line per classified text, one ``"feedback"`` per label."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()

    def write(self, records: Sequence[dict]) -> None:
        lines = "".join(json.dumps({"time": time.time(), **r}, ensure_ascii=False) + "\n" for r in records)
        with self.lock, open(self.path, "a", encoding="utf-8") as f:
            f.write(lines)


def read_feedback(path: str | Path) -> pd.DataFrame:
    """The logged texts that users labelled, as new labelled data.

    Args:
        path: the server's ``--log-file``.
    Returns:
        DataFrame ``text, label, predicted, probability`` (one row per labelled text; the latest label wins),
        ready for ``llmguide finetune --train`` after ``df[["text", "label"]].to_csv(...)``.
    """
    rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    served = {r["id"]: r for r in rows if r.get("kind") == "request"}
    labels = {r["id"]: r["label"] for r in rows if r.get("kind") == "feedback" and r.get("id") in served}
    out = [{"text": served[i]["text"], "label": lab, "predicted": served[i]["label"],
            "probability": served[i]["probability"]} for i, lab in labels.items()]
    return pd.DataFrame(out, columns=["text", "label", "predicted", "probability"])


def served_texts(path: str | Path) -> list[str]:
    """Every text the server classified, from its ``--log-file`` (for a drift check)."""
    rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r["text"] for r in rows if r.get("kind") == "request"]

"""`llmguide serve`: the contract in-process (TestClient), then a real uvicorn process on 127.0.0.1 for
concurrency, streaming, the official openai client, schemathesis fuzzing and overload.

Served = in-process: probabilities within PROB_ATOL of Classifier.predict_proba (batch composition changes the
padding and with it the last bits), labels identical, greedy and seeded completions equal to generate(), and
streamed chunks concatenate to the non-streamed text, alone and under concurrent load.
"""

from __future__ import annotations

import asyncio
import json
import pickle
import subprocess
import sys

import httpx
import numpy as np
import pytest
import schemathesis
import torch
from hypothesis import HealthCheck, settings

from llmguide.batching import Batcher, QueueFull, _visible
from llmguide.classify import classifier_from_pretrained, end_token_id, save_classifier
from llmguide.data import REVIEW_LABELS
from llmguide.generate import generate
from llmguide.monitoring import read_feedback, served_texts
from llmguide.pretrain import load_model_folder, review_lm_dir
from llmguide.quantize import QuantLinear, quantize_folder
from llmguide.serve import (
    ServeConfig,
    check_bind,
    create_app,
    load_folder,
    load_models,
    start_server,
)

pytest.importorskip("fastapi", reason="the service needs the serve extra: pip install -e '.[serve]'")
from fastapi.testclient import TestClient  # noqa: E402

PROB_ATOL = 1e-5  # served vs in-process probabilities: padding changes only the last bits
TEXTS = ["物流很快，包装完好，东西很好用", "质量太差了，用了两天就坏了", "The delivery was fast", "房间很小" * 60]
PROMPTS = ["这家店的", "房间很", "The room"]


@pytest.fixture(scope="session")
def folders(tmp_path_factory) -> dict:
    """A classifier folder (the shipped review LM with a seeded, untrained head: the served = in-process checks
    need its exact numbers, not its accuracy) and the shipped LM folder."""
    lm, tok, _ = load_model_folder(review_lm_dir())
    torch.manual_seed(0)
    clf = classifier_from_pretrained(lm, len(REVIEW_LABELS), seed=0).eval()
    with torch.no_grad():
        clf.score.weight.mul_(50)  # a head of std 0.02 gives ~0.5 everywhere; spread the probabilities
    folder = tmp_path_factory.mktemp("serve") / "classifier"
    save_classifier(clf, tok, list(REVIEW_LABELS), folder, {"block_size": 128, "end_id": end_token_id(tok)})
    return {"classifier": str(folder), "lm": str(review_lm_dir())}


@pytest.fixture(scope="session")
def models(folders):
    return {m.kind: m for m in load_models(ServeConfig(**folders, device="cpu"))}


@pytest.fixture(scope="module")
def client(folders):
    config = ServeConfig(**folders, device="cpu", max_text_chars=1000, max_tokens=64, max_body_bytes=20_000)
    with TestClient(create_app(config, load_models(config))) as c:
        yield c


@pytest.fixture(scope="module")
def server(folders):
    with start_server(folders["classifier"], folders["lm"], "--max-tokens", "64", "--device", "cpu") as s:
        yield s


def greedy_reference(models, prompt: str, n: int, **kwargs) -> str:
    lm = models["lm"]
    ids = lm.tokenizer.encode(prompt)
    out = generate(lm.model, ids, n, temperature=kwargs.pop("temperature", 0), **kwargs)
    return lm.tokenizer.decode(out[len(ids):].tolist())


def sse_texts(body: str) -> tuple[list[str], dict]:
    """The text of each streamed chunk, and the last chunk; checks the stream ends with `data: [DONE]`."""
    events = [e for e in body.split("\n\n") if e.strip()]
    assert events[-1] == "data: [DONE]", events[-1]
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert all(c["object"] == "text_completion" for c in chunks)
    return [c["choices"][0]["text"] for c in chunks], chunks[-1]


# ---------------------------------------------------------------- the contract, in-process

def test_health_models_and_openapi(client):
    health = client.get("/health").json()
    assert health["status"] == "ok" and set(health["models"].values()) == {"classifier", "lm"}
    cards = {m["id"]: m for m in client.get("/v1/models").json()["data"]}
    assert cards["classifier"]["labels"] == list(REVIEW_LABELS) and cards["review-gpt"]["kind"] == "lm"
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/health", "/v1/models", "/v1/classify", "/v1/completions", "/metrics"} <= set(paths)
    assert client.get("/docs").status_code == 404  # the Swagger page would load its script from a CDN


def test_classify_equals_predict_proba(client, models):
    answer = client.post("/v1/classify", json={"texts": TEXTS}).json()
    expected, n_cut = models["classifier"].classifier.predict_proba(TEXTS)
    got = np.array([[r["probabilities"][name] for name in REVIEW_LABELS] for r in answer["results"]])
    np.testing.assert_allclose(got, expected, atol=PROB_ATOL, rtol=0)
    assert [r["label"] for r in answer["results"]] == [REVIEW_LABELS[i] for i in expected.argmax(1)]
    assert answer["truncated"] == n_cut == 1 and answer["results"][3]["truncated"]
    assert answer["results"][3]["tokens"] == 128 and not answer["results"][0]["truncated"]  # cut, and said so


@pytest.mark.parametrize("prompt", PROMPTS)
def test_greedy_completion_equals_generate_and_stream_equals_non_stream(client, models, prompt):
    request = {"prompt": prompt, "max_tokens": 24, "temperature": 0}
    answer = client.post("/v1/completions", json=request).json()
    assert answer["choices"][0]["text"] == greedy_reference(models, prompt, 24)
    assert answer["choices"][0]["finish_reason"] == "length" and answer["usage"]["completion_tokens"] == 24
    pieces, last = sse_texts(client.post("/v1/completions", json={**request, "stream": True}).text)
    assert "".join(pieces) == answer["choices"][0]["text"] and len([p for p in pieces if p]) > 1
    assert last["choices"][0]["finish_reason"] == "length" and last["usage"] == answer["usage"]


def test_seeded_sampling_equals_generate_and_repeats(client, models):
    request = {"prompt": "这家店的", "max_tokens": 30, "temperature": 0.9, "top_p": 0.8, "seed": 7}
    texts = [client.post("/v1/completions", json=request).json()["choices"][0]["text"] for _ in range(2)]
    assert texts[0] == texts[1] == greedy_reference(models, "这家店的", 30, temperature=0.9, top_p=0.8, seed=7)
    pieces, _ = sse_texts(client.post("/v1/completions", json={**request, "stream": True}).text)
    assert "".join(pieces) == texts[0]


def test_stop_strings_cut_the_text_in_both_modes(client, models):
    full = greedy_reference(models, "这家店的", 40)
    stop = next(ch for ch in full[3:] if ch in "，。！")  # a punctuation mark the greedy text reaches
    request = {"prompt": "这家店的", "max_tokens": 40, "temperature": 0, "stop": [stop, "never-appears"]}
    answer = client.post("/v1/completions", json=request).json()["choices"][0]
    assert answer["text"] == full[:full.index(stop)] and answer["finish_reason"] == "stop"
    pieces, last = sse_texts(client.post("/v1/completions", json={**request, "stream": True}).text)
    assert "".join(pieces) == answer["text"] and last["choices"][0]["finish_reason"] == "stop"


def test_visible_holds_back_a_possible_stop_prefix():
    assert _visible("abc", ["cd"]) == ("abc", 2, False)  # "c" may start "cd"
    assert _visible("abcd", ["cd"]) == ("ab", 2, True)
    assert _visible("abc", []) == ("abc", 3, False)
    assert _visible("ab\ufffd", []) == ("ab\ufffd", 2, False)  # half a character


LONG = "好" * 1001
BAD_REQUESTS = [  # (endpoint, JSON body or raw bytes, status, words the one-line message must contain)
    ("/v1/classify", {"texts": [LONG]}, 422, ["texts.0", "1000 characters"]),
    ("/v1/classify", {"texts": ["好"] * 65}, 422, ["texts", "64 items"]),
    ("/v1/classify", {"texts": []}, 422, ["texts", "at least 1"]),
    ("/v1/classify", {"texts": "一条评论"}, 422, ["texts", "valid list"]),
    ("/v1/classify", {"texts": [1, 2]}, 422, ["texts.0", "valid string"]),
    ("/v1/classify", {"texts": ["   "]}, 422, ["texts.0", "blank"]),
    ("/v1/classify", {"texts": ["好" * 300], "truncate": False}, 422, ["texts.0", "limit of 127"]),
    ("/v1/classify", {"texts": ["好"], "model": "gpt-9"}, 404, ["unknown model", "gpt-9"]),
    ("/v1/classify", {"texts": ["好"], "model": "review-gpt"}, 400, ["review-gpt", "language model"]),
    ("/v1/classify", {"texts": ["好"], "colour": "red"}, 422, ["colour", "Extra inputs"]),
    ("/v1/completions", {"prompt": "好", "max_tokens": 65}, 422, ["max_tokens", "64"]),
    ("/v1/completions", {"prompt": "好", "max_tokens": "5"}, 422, ["max_tokens", "valid integer"]),
    ("/v1/completions", {"prompt": "好", "temperature": 3}, 422, ["temperature", "2"]),
    ("/v1/completions", {"prompt": "好", "temperature": 1e-300}, 422, ["temperature", "0.01"]),
    ("/v1/completions", {"prompt": "好", "top_p": 5e-324}, 422, ["top_p", "0.000001"]),
    ("/v1/completions", {"prompt": "好", "stream": "yes"}, 422, ["stream", "valid boolean"]),
    ("/v1/completions", {"prompt": ["好"]}, 422, ["prompt", "valid string"]),
    ("/v1/completions", {"prompt": "好" * 200}, 422, ["prompt", "context of 128"]),
    ("/v1/completions", {"prompt": "好", "model": "nope"}, 404, ["unknown model"]),
    ("/v1/classify", b'{"texts": ["\xff\xfe"]}', 400, ["not valid UTF-8"]),
    ("/v1/classify", b'{"texts": [', 422, ["not valid JSON"]),
    ("/v1/classify", json.dumps({"texts": ["好" * 900] * 10}).encode(), 413, ["20000 bytes"]),
]


@pytest.mark.parametrize("endpoint,body,status,words", BAD_REQUESTS, ids=lambda x: str(x)[:30])
def test_bad_request_is_a_one_line_4xx_and_the_server_stays_healthy(client, endpoint, body, status, words):
    if isinstance(body, bytes):
        response = client.post(endpoint, content=body, headers={"content-type": "application/json"})
    else:
        response = client.post(endpoint, json=body)
    message = response.json()["error"]["message"]
    assert response.status_code == status, message
    assert "\n" not in message and all(w in message for w in words), message
    assert client.get("/health").status_code == 200
    assert client.post("/v1/classify", json={"texts": ["好"]}).status_code == 200


def test_metrics_are_prometheus_text(client):
    from prometheus_client.parser import text_string_to_metric_families

    client.post("/v1/classify", json={"texts": ["好", "差"]})
    client.post("/v1/classify", json={"texts": []})
    families = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").text)}
    assert {"llmguide_requests", "llmguide_request_errors", "llmguide_rejected", "llmguide_request_seconds",
            "llmguide_batch_rows", "llmguide_queue_depth"} <= set(families)
    errors = {s.labels["endpoint"]: s.value for s in families["llmguide_request_errors"].samples}
    assert errors["/v1/classify"] >= 1
    rows = {s.name: s.value for s in families["llmguide_batch_rows"].samples if s.labels["model"] == "classifier"}
    assert rows["llmguide_batch_rows_count"] >= 1 and rows["llmguide_batch_rows_sum"] >= 2


def test_feedback_is_logged_and_read_back_as_labelled_data(folders, tmp_path):
    config = ServeConfig(**folders, device="cpu", log_file=str(tmp_path / "log.jsonl"))
    with TestClient(create_app(config, load_models(config))) as c:
        answer = c.post("/v1/classify", json={"texts": ["物流很快", "太差了"]}).json()
        assert c.post("/v1/feedback", json={"id": answer["id"], "index": 1, "label": "negative"}).status_code == 200
        bad = c.post("/v1/feedback", json={"id": answer["id"], "label": "meh"})
        assert bad.status_code == 422 and "label" in bad.json()["error"]["message"]
    df = read_feedback(tmp_path / "log.jsonl")
    assert df.text.tolist() == ["太差了"] and df.label.tolist() == ["negative"]
    assert df.predicted.tolist() == [answer["results"][1]["label"]]
    assert served_texts(tmp_path / "log.jsonl") == ["物流很快", "太差了"]


def test_feedback_without_a_log_file_is_404(client):
    response = client.post("/v1/feedback", json={"id": "clf-x", "label": "negative"})
    assert response.status_code == 404 and "--log-file" in response.json()["error"]["message"]


# ---------------------------------------------------------------- security defaults

def test_other_hosts_need_an_api_key_checked_in_constant_time(folders, monkeypatch):
    with pytest.raises(ValueError, match="--api-key"):
        check_bind("0.0.0.0", None)
    check_bind("127.0.0.1", None)
    import llmguide.serve as serve

    calls = []
    real = serve.hmac.compare_digest
    monkeypatch.setattr(serve.hmac, "compare_digest", lambda a, b: calls.append(1) or real(a, b))
    config = ServeConfig(classifier=folders["classifier"], host="0.0.0.0", api_key="s3cret", device="cpu")
    with TestClient(create_app(config, load_models(config))) as c:
        assert c.get("/health").status_code == 200  # liveness stays open for load balancers
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            response = c.post("/v1/classify", json={"texts": ["好"]}, headers=headers)
            assert response.status_code == 401 and "Bearer" in response.json()["error"]["message"]
        assert c.get("/metrics").status_code == 401
        ok = c.post("/v1/classify", json={"texts": ["好"]}, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and calls


def test_no_cors_unless_asked(folders, client):
    preflight = {"Origin": "http://elsewhere.example", "Access-Control-Request-Method": "POST"}
    assert "access-control-allow-origin" not in client.options("/v1/classify", headers=preflight).headers
    config = ServeConfig(classifier=folders["classifier"], cors_origins=["http://elsewhere.example"], device="cpu")
    with TestClient(create_app(config, load_models(config))) as c:
        allowed = c.options("/v1/classify", headers=preflight).headers
        assert allowed["access-control-allow-origin"] == "http://elsewhere.example"


def test_loading_uses_no_pickle(folders, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("pickle on the load path")

    for module, name in ((pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (torch, "load")):
        monkeypatch.setattr(module, name, refuse)
    assert load_folder(folders["classifier"], "classifier", "cpu").classifier is not None
    assert load_folder(folders["lm"], "lm", "cpu").model is not None


# ---------------------------------------------------------------- start-up failures: one line, exit non-zero

@pytest.mark.parametrize("make,words", [
    (lambda tmp, f: ["--lm", str(tmp / "missing")], ["--lm", "missing", "failed to load"]),
    (lambda tmp, f: ["--lm", f["classifier"]], ["classifier folder", "--classifier"]),
    (lambda tmp, f: ["--classifier", f["lm"]], ["language-model folder", "--lm"]),
    (lambda tmp, f: ["--lm", str(_broken(tmp))], ["broken", "failed to load"]),
    (lambda tmp, f: [], ["nothing to serve"]),
    (lambda tmp, f: ["--lm", f["lm"], "--host", "0.0.0.0"], ["--api-key"]),
    (lambda tmp, f: ["--lm", f["lm"], "--max-batch", "0"], ["--max-batch"]),
])
def test_start_up_failure_is_one_line_and_exit_2(folders, tmp_path, capsys, make, words):
    from llmguide.cli import main

    assert main(["serve", *make(tmp_path, folders)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("llmguide serve: error:") and "\n" not in err and all(w in err for w in words), err


def _broken(tmp):
    folder = tmp / "broken"
    folder.mkdir()
    (folder / "config.json").write_text("{not json", encoding="utf-8")
    return folder


def test_the_real_command_exits_non_zero_with_one_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "llmguide.cli", "serve", "--classifier", str(tmp_path / "none")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr


# ---------------------------------------------------------------- the batcher

def test_batcher_groups_up_to_max_batch_and_bounds_its_queue():
    sizes = []

    def run(jobs):
        sizes.append(sum(j.size for j in jobs))
        return [j.payload * 2 for j in jobs]

    async def main():
        batcher = Batcher(run, max_batch=4, max_wait_ms=50, max_queue=8)
        batcher.start()
        jobs = [batcher.submit(i) for i in range(8)]
        with pytest.raises(QueueFull, match="8 requests"):
            batcher.submit(99)  # the worker has not run yet: 8 waiting is the bound
        results = await asyncio.gather(*(j.future for j in jobs))
        await batcher.stop()
        return results

    assert asyncio.run(main()) == [2 * i for i in range(8)]
    assert sizes == [4, 4]


# ---------------------------------------------------------------- a real server: load, clients, fuzzing

async def _many(url: str, requests: list[tuple[str, dict]], limit: int = 16) -> list[httpx.Response]:
    gate = asyncio.Semaphore(limit)  # bounded concurrency
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        async def one(path, body):
            async with gate:
                return await http.post(path, json=body)

        return await asyncio.gather(*(one(p, b) for p, b in requests))


def test_served_equals_in_process_under_concurrent_load(server, models):
    rng = np.random.default_rng(0)
    batches = [[TEXTS[i] for i in rng.choice(len(TEXTS), size=rng.integers(1, 4))] for _ in range(24)]
    gen = [{"prompt": PROMPTS[i % 3], "max_tokens": 20, "temperature": 0, "stream": i % 2 == 1} for i in range(8)]
    responses = asyncio.run(_many(server.url, [("/v1/classify", {"texts": b}) for b in batches]
                                  + [("/v1/completions", g) for g in gen]))
    assert [r.status_code for r in responses] == [200] * len(responses)
    clf = models["classifier"].classifier
    for texts, response in zip(batches, responses, strict=False):
        expected, _ = clf.predict_proba(texts)
        got = np.array([[r["probabilities"][n] for n in REVIEW_LABELS] for r in response.json()["results"]])
        np.testing.assert_allclose(got, expected, atol=PROB_ATOL, rtol=0)
        assert [r["label"] for r in response.json()["results"]] == [REVIEW_LABELS[i] for i in expected.argmax(1)]
    for g, response in zip(gen, responses[len(batches):], strict=True):
        text = "".join(sse_texts(response.text)[0]) if g["stream"] else response.json()["choices"][0]["text"]
        assert text == greedy_reference(models, g["prompt"], 20)
    metrics = httpx.get(server.url + "/metrics").text
    count = float(next(ln.split()[-1] for ln in metrics.splitlines()
                       if ln.startswith('llmguide_batch_rows_count{model="classifier"}')))
    assert count < sum(map(len, batches))  # some texts shared a forward pass: the batching ran


def test_the_official_openai_client(server, models):
    import openai

    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused-on-loopback", max_retries=0)
    assert {"classifier", "review-gpt"} <= {m.id for m in client.models.list()}
    expected = greedy_reference(models, "这家店的", 24)
    answer = client.completions.create(model="review-gpt", prompt="这家店的", max_tokens=24, temperature=0)
    assert answer.choices[0].text == expected and answer.usage.completion_tokens == 24
    stream = client.completions.create(model="review-gpt", prompt="这家店的", max_tokens=24, temperature=0,
                                       stream=True)
    pieces = [chunk.choices[0].text for chunk in stream]
    assert "".join(pieces) == expected and len([p for p in pieces if p]) > 1
    with pytest.raises(openai.UnprocessableEntityError, match="max_tokens"):
        client.completions.create(model="review-gpt", prompt="好", max_tokens=10_000)
    with pytest.raises(openai.NotFoundError, match="unknown model"):
        client.completions.create(model="gpt-4", prompt="好")


@pytest.fixture(scope="module")
def api_schema(server):
    return schemathesis.openapi.from_url(server.url + "/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzzed_requests_never_get_a_5xx_other_than_503(case):
    response = case.call(timeout=30)
    assert response.status_code < 500 or response.status_code == 503, (response.status_code, response.text[:300])
    if 400 <= response.status_code < 500:
        assert "error" in response.json(), (case.method, case.path, response.status_code, response.text[:300])
        message = response.json()["error"]["message"]
        assert message and "\n" not in message


def test_overload_answers_200_or_503_then_stays_healthy(folders):
    flags = ("--max-queue", "2", "--max-batch", "1", "--max-wait-ms", "0", "--device", "cpu")
    with start_server(None, folders["lm"], *flags) as s:
        body = {"prompt": "这家店的", "max_tokens": 48, "temperature": 0}
        responses = asyncio.run(_many(s.url, [("/v1/completions", body)] * 24, limit=24))
        codes = [r.status_code for r in responses]
        assert set(codes) <= {200, 503} and codes.count(503) > 0 and codes.count(200) > 0, codes
        assert all(r.headers["retry-after"] == "1" for r in responses if r.status_code == 503)
        assert httpx.get(s.url + "/health").json()["status"] == "ok"
        metrics = httpx.get(s.url + "/metrics").text
        assert f'llmguide_rejected_total{{endpoint="/v1/completions"}} {codes.count(503)}' in metrics
        again = httpx.post(s.url + "/v1/completions", json=body, timeout=60)
        assert again.status_code == 200  # it recovered


def test_an_int8_folder_from_llmguide_quantize_is_served_like_any_other(folders, tmp_path):
    # `llmguide quantize` keeps the folder's kind, so the server loads it through the same load_folder path.
    q8 = quantize_folder(folders["classifier"], tmp_path / "classifier-int8", "int8")
    config = ServeConfig(classifier=str(q8), device="cpu", max_text_chars=1000)
    (served,) = load_models(config)
    assert any(isinstance(m, QuantLinear) for m in served.classifier.model.modules())
    with TestClient(create_app(config, [served])) as c:
        answer = c.post("/v1/classify", json={"texts": TEXTS[:3]}).json()
    fp32, _ = load_models(ServeConfig(classifier=folders["classifier"], device="cpu"))[0].classifier.predict_proba(
        TEXTS[:3])
    got = np.array([[r["probabilities"][name] for name in REVIEW_LABELS] for r in answer["results"]])
    assert np.abs(got - fp32).max() < 0.05  # int8 weights and activations move probabilities a little, not labels
    assert [r["label"] for r in answer["results"]] == [REVIEW_LABELS[i] for i in fp32.argmax(1)]

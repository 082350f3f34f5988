"""The web demo in a real browser: Playwright (sync API) drives Debian's chromium against a real server.

The test types a review (Chinese, then English), checks the label and bars shown against the in-process
classifier, streams a completion and checks that its tokens arrived one after another rather than in one
piece. A screenshot is saved to runs/test-artifacts/ (also on failure). Without a browser the test skips
and says how to enable it; with LLMGUIDE_REQUIRE_BROWSER=1 (CI) a missing browser is a failure.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from llmguide.classify import classifier_from_pretrained, end_token_id, save_classifier
from llmguide.data import REVIEW_LABELS
from llmguide.generate import generate
from llmguide.inference import load_classifier
from llmguide.pretrain import load_model_folder, review_lm_dir
from llmguide.serve import start_server

ARTIFACTS = Path(__file__).resolve().parents[1] / "runs" / "test-artifacts"
HOW_TO = ("no browser for the web-demo test: apt-get install -y chromium && pip install playwright "
          "(Debian's chromium is used; `playwright install` is not needed)")


def expect(locator):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def _browser_or_skip() -> str:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        chromium = None
    if chromium is None:
        if os.environ.get("LLMGUIDE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"LLMGUIDE_REQUIRE_BROWSER=1 but {HOW_TO}")
        pytest.skip(HOW_TO)
    return chromium


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    lm, tok, _ = load_model_folder(review_lm_dir())
    torch.manual_seed(0)
    clf = classifier_from_pretrained(lm, len(REVIEW_LABELS), seed=0).eval()
    with torch.no_grad():
        clf.score.weight.mul_(50)  # spread the untrained head's probabilities away from 0.5
    folder = tmp_path_factory.mktemp("webdemo") / "classifier"
    save_classifier(clf, tok, list(REVIEW_LABELS), folder, {"block_size": 128, "end_id": end_token_id(tok)})
    with start_server(folder, review_lm_dir(), "--device", "cpu") as server:
        yield server, load_classifier(folder, device="cpu"), lm, tok


@pytest.fixture
def page(demo):
    chromium = _browser_or_skip()

    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])  # root in CI containers
        page = browser.new_page(viewport={"width": 1000, "height": 900})
        page.set_default_timeout(30_000)
        try:
            yield page
        except BaseException:
            page.screenshot(path=str(ARTIFACTS / "webdemo-failure.png"), full_page=True)
            raise
        finally:
            browser.close()


@pytest.mark.parametrize("review", ["物流很快，包装完好，东西很好用", "The delivery was slow and the box was broken"])
def test_classify_panel_shows_the_label_and_bars(demo, page, review):
    server, classifier, _, _ = demo
    page.goto(server.url + "/")
    expect(page.locator("#models")).to_contain_text("classifier")  # locators, not eval: the page's CSP forbids it
    page.fill("#text", review)
    page.click("#classify")
    expect(page.locator("#label")).not_to_have_text("–")
    expected = classifier.predict([review]).iloc[0]
    assert page.inner_text("#label") == expected.label
    shown = {row.get_attribute("data-label"): float(row.query_selector(".value").inner_text().rstrip("%"))
             for row in page.query_selector_all("#bars .bar")}
    assert set(shown) == set(REVIEW_LABELS)
    assert abs(shown[expected.label] - 100 * expected.probability) < 0.051  # shown to 0.1 %
    assert page.inner_text("#classify-error") == ""


def test_generate_panel_streams_tokens_incrementally(demo, page):
    server, _, lm, tok = demo
    page.goto(server.url + "/")
    expect(page.locator("#generate")).to_be_enabled()
    page.click(".examples button >> nth=0")  # an example review, so the screenshot shows both panels at work
    expect(page.locator("#label")).not_to_have_text("–")
    page.fill("#prompt", "这家店的")
    page.eval_on_selector("#temperature", "el => { el.value = '0'; el.dispatchEvent(new Event('input')); }")
    page.fill("#max_tokens", "80")
    page.click("#generate")
    page.wait_for_selector("#completion[data-done='true']")
    chunks = page.evaluate("window.llmguideChunks")
    shown = page.inner_text("#completion")
    ids = tok.encode("这家店的")
    expected = tok.decode(generate(lm, ids, 80, temperature=0)[len(ids):].tolist())
    assert shown == expected == "".join(c["text"] for c in chunks)  # greedy: the same text as in-process
    arrivals = sorted({round(c["t"], 1) for c in chunks})
    assert len(chunks) >= 20 and len(arrivals) >= 5, arrivals  # many pieces, read at many different moments
    assert "finish: length" in page.inner_text("#stream-info")
    page.screenshot(path=str(ARTIFACTS / "webdemo.png"), full_page=True)
    assert (ARTIFACTS / "webdemo.png").stat().st_size > 10_000

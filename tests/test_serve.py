"""``nndl serve``: a real server (a subprocess on a free port of 127.0.0.1)
with a chapter 1 network trained here, its JSON API (good and bad
requests), and the page driven in real headless Chromium through Playwright.

The browser tests need Debian's ``chromium`` (``/usr/bin/chromium``, which
``.ci/run`` installs) and the ``playwright`` package (in the ``test`` extra);
they are skipped, saying why, where either is missing. With
``NNDL_SCREENSHOTS=docs`` they also save the README's screenshots there.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

import nndl
from nndl import cli
from nndl.data import Dataset
from nndl.data.preprocess import bounding_box
from nndl.predictions import probabilities

from helpers import MNIST_DIR, needs_mnist

pytestmark = needs_mnist
CHROMIUM = Path("/usr/bin/chromium")
MB = 1024 * 1024


# -- a trained network, its histories and a running server ------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory, mnist):
    """The book's chapter 1 network ([784, 30, 10], sigmoid, quadratic cost, eta 3.0) after 3
    epochs on the 50,000 training images (about 93% on the test images), saved with its history;
    a second, shorter run (eta 0.5) for the Curves view; and a history whose cost diverged."""
    folder = tmp_path_factory.mktemp("serve")
    validation = Dataset(mnist["train_x"][50000:], mnist["train_y"][50000:])
    training = Dataset(mnist["train_x"][:50000], mnist["train_y"][:50000])
    paths = {}
    for name, eta, epochs in (("chapter1", 3.0, 3), ("eta0.5", 0.5, 2)):
        net = nndl.Network.from_sizes([784, 30, 10], init="large", rng=0)
        history = nndl.train(net, nndl.SGD(eta), training.x, training.y, epochs=epochs,
                             rng=np.random.default_rng(1),
                             callbacks=[nndl.callbacks.Evaluation({"validation": validation},
                                                                  ("accuracy", "cost"))])
        history.to_json(folder / f"{name}.json")
        nndl.save(net, folder / f"{name}.npz")
        paths[name] = folder / f"{name}.npz"
        paths[name + "_history"] = folder / f"{name}.json"
    (folder / "diverged.json").write_text('{"epoch_seconds": [1.0, 1.0], "training_cost": [0.5, NaN], '
                                          '"gradients": [{"epoch": 0, "batch": 0, "layer0/w": 0.1}], '
                                          '"run": {"stop_reason": "diverged"}}')
    paths["diverged_history"] = folder / "diverged.json"
    return paths


def _start_server(*args: str, log: Path) -> tuple[subprocess.Popen, str]:
    """``nndl serve ARGS --port 0`` as a subprocess; returns it and the URL it printed."""
    env = dict(os.environ, NNDL_DATA=str(MNIST_DIR))
    proc = subprocess.Popen([sys.executable, "-m", "nndl.cli", "serve", *args, "--port", "0"],
                            stdout=subprocess.PIPE, stderr=log.open("w"), text=True, env=env)
    ready, _, _ = select.select([proc.stdout], [], [], 120)
    line = proc.stdout.readline() if ready else ""
    match = re.search(r"at (http://127\.0\.0\.1:\d+/) \(Ctrl-C to stop\)", line)
    if not match:
        proc.kill()
        raise AssertionError(f"nndl serve did not start: {line!r}\n{log.read_text()}")
    return proc, match.group(1)


@pytest.fixture(scope="module")
def server(trained, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve-log") / "stderr.txt"
    proc, url = _start_server(str(trained["chapter1"]), str(trained["eta0.5"]), "--history",
                              str(trained["chapter1_history"]), str(trained["eta0.5_history"]),
                              str(trained["diverged_history"]), log=log)
    yield url
    proc.send_signal(signal.SIGINT)  # Ctrl-C: a clean stop
    assert proc.wait(timeout=20) == 0, log.read_text()
    assert proc.stdout.read() == "Stopped.\n"
    assert "Traceback" not in log.read_text(), log.read_text()


def call(url: str, method: str, path: str, body=None, raw: bytes | None = None):
    """One HTTP request; returns (status, parsed JSON or text, content type)."""
    where = urlsplit(url)
    conn = http.client.HTTPConnection(where.hostname, where.port, timeout=60)
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    conn.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
    response = conn.getresponse()
    payload = response.read()
    kind = response.getheader("Content-Type", "")
    conn.close()
    return response.status, json.loads(payload) if kind.startswith("application/json") else payload, kind


# -- the API -----------------------------------------------------------------------------------
def test_models_and_static_files(server):
    status, data, _ = call(server, "GET", "/api/models")
    assert status == 200
    assert [m["name"] for m in data["models"]] == ["chapter1", "eta0.5"]
    assert data["models"][0]["params"] == 784 * 30 + 30 + 30 * 10 + 10 and data["test_images"] == 10000
    status, page, kind = call(server, "GET", "/")
    assert status == 200 and kind.startswith("text/html") and b'<canvas id="pad"' in page
    assert b"http" not in page.replace(b"http-equiv", b"")  # nothing fetched from elsewhere
    for name, kind_expected in (("app.js", "text/javascript"), ("style.css", "text/css")):
        status, body, kind = call(server, "GET", f"/static/{name}")
        assert status == 200 and kind.startswith(kind_expected) and b"http://" not in body and b"https://" not in body


def test_predict_gives_the_networks_probabilities(server, trained, mnist):
    net = nndl.load(trained["chapter1"])
    x = mnist["test_x"][:5]
    expected, _ = probabilities(net, x)
    for i in range(5):
        status, data, _ = call(server, "POST", "/api/predict",
                               {"model": "chapter1", "pixels": [float(v) for v in x[i]]})
        assert status == 200
        assert math.isclose(sum(data["probabilities"]), 1.0, abs_tol=1e-9)
        np.testing.assert_allclose(data["probabilities"], expected[i], rtol=1e-5)
        assert data["prediction"] == int(expected[i].argmax()) and data["rescaled"] is True


def test_preprocess_returns_the_mnist_image_drawn_back(server, mnist):
    x = mnist["test_x"][7].reshape(28, 28)
    top, bottom, left, right = bounding_box(x)
    big = np.kron(x[top:bottom, left:right], np.ones((8, 8)))   # scaled up 8 times ...
    canvas = np.zeros((240, 200))
    canvas[10:10 + big.shape[0], 5:5 + big.shape[1]] = big     # ... near a corner
    status, data, _ = call(server, "POST", "/api/preprocess",
                           {"width": 200, "height": 240, "pixels": [float(v) for v in canvas.reshape(-1)]})
    assert status == 200
    assert data["box"] == [10, 10 + big.shape[0], 5, 5 + big.shape[1]]
    assert max(data["fitted"]["height"], data["fitted"]["width"]) == 20
    np.testing.assert_allclose(np.reshape(data["image"], (28, 28)), x, atol=1e-4)


def test_mistakes_match_the_network_and_filter(server, trained, mnist):
    net = nndl.load(trained["chapter1"])
    x, y = mnist["test_x"], mnist["test_y"]
    predicted = net.predict(x)
    status, data, _ = call(server, "GET", "/api/mistakes?model=chapter1&limit=500")
    assert status == 200
    assert data["count"] == 10000 - net.accuracy(x, y) == data["matching"] and data["total"] == 10000
    assert np.trace(data["confusion"]) == data["correct"] == 10000 - data["count"]
    wrong = np.flatnonzero(predicted != y)
    assert [item["index"] for item in data["items"]] == wrong[:500].tolist()
    first = data["items"][0]
    assert first["true"] == y[first["index"]] and first["predicted"] == predicted[first["index"]]
    pixels = np.frombuffer(__import__("base64").b64decode(first["image"]), np.uint8) / 256
    np.testing.assert_allclose(pixels, x[first["index"]], atol=1e-6)  # MNIST's bytes, exactly

    status, page, _ = call(server, "GET", "/api/mistakes?model=chapter1&true=4&predicted=9&offset=2&limit=3")
    n49 = int(((y == 4) & (predicted == 9)).sum())
    assert status == 200 and page["matching"] == n49 == data["confusion"][4][9]
    assert [i["index"] for i in page["items"]] == wrong[(y[wrong] == 4) & (predicted[wrong] == 9)][2:5].tolist()


def test_histories_with_a_diverged_cost(server, trained):
    status, data, _ = call(server, "GET", "/api/histories")
    assert status == 200
    runs = {h["name"]: h for h in data["histories"]}
    assert list(runs) == ["chapter1", "eta0.5", "diverged"]
    saved = json.loads(trained["chapter1_history"].read_text())
    assert runs["chapter1"]["epochs"] == 3 and runs["chapter1"]["data"]["validation_accuracy"] == saved["validation_accuracy"]
    # NaN is not JSON: sent as null; what is not a per-epoch number (gradient records) is not sent
    assert runs["diverged"]["data"] == {"epoch_seconds": [1.0, 1.0], "training_cost": [0.5, None]}


PIXELS = [0.0] * 784
BAD_REQUESTS = {
    # the five the issue names ...
    "wrong length": ("POST", "/api/predict", {"model": "chapter1", "pixels": PIXELS[:783]}, 400, "783 values; expected 784"),
    "NaN": ("POST", "/api/predict", b'{"model": "chapter1", "pixels": [NaN' + b", 0" * 783 + b"]}", 400, "NaN"),
    "strings": ("POST", "/api/predict", {"model": "chapter1", "pixels": PIXELS[:5] + ["0.5"] + PIXELS[6:]}, 400, "pixels[5] is '0.5'"),
    "10 MB body": ("POST", "/api/predict", b"[" + b"0, " * (10 * MB // 3) + b"0]", 413, "larger than"),
    "unknown model": ("POST", "/api/predict", {"model": "../../etc/passwd", "pixels": PIXELS}, 404, "unknown model '../../etc/passwd'; loaded models: chapter1, eta0.5"),
    # ... and their relatives
    "Infinity": ("POST", "/api/predict", b'{"model": "chapter1", "pixels": [-Infinity' + b", 0" * 783 + b"]}", 400, "Infinity"),
    "huge number": ("POST", "/api/predict", b'{"model": "chapter1", "pixels": [1e999' + b", 0" * 783 + b"]}", 400, "pixels[0] is inf"),
    "null (JSON.stringify of NaN)": ("POST", "/api/predict", {"model": "chapter1", "pixels": [None] + PIXELS[1:]}, 400, "pixels[0] is None"),
    "boolean": ("POST", "/api/predict", {"model": "chapter1", "pixels": [True] + PIXELS[1:]}, 400, "pixels[0] is True"),
    "out of range": ("POST", "/api/predict", {"model": "chapter1", "pixels": PIXELS[:-1] + [255]}, 400, "number in [0, 1]"),
    "nested list": ("POST", "/api/predict", {"model": "chapter1", "pixels": [PIXELS[:28]] * 28}, 400, "28 values"),
    "no pixels": ("POST", "/api/predict", {"model": "chapter1"}, 400, "'pixels' must be a list of 784"),
    "model not a string": ("POST", "/api/predict", {"model": ["chapter1"], "pixels": PIXELS}, 404, "unknown model"),
    "no model": ("POST", "/api/predict", {"pixels": PIXELS}, 404, "unknown model None"),
    "not JSON": ("POST", "/api/predict", b"pixels=1,2,3", 400, "not valid JSON"),
    "not UTF-8": ("POST", "/api/predict", b'{"model": "\xff"}', 400, "not valid JSON"),
    "empty body": ("POST", "/api/predict", b"", 400, "not valid JSON"),
    "a JSON array": ("POST", "/api/predict", PIXELS, 400, "expected a JSON object, got list"),
    "deep nesting": ("POST", "/api/predict", b"[" * 100000 + b"]" * 100000, 400, "nests too deeply"),
    "40 MB body": ("POST", "/api/preprocess", b" " * (40 * MB), 413, "larger than"),
    "drawing size mismatch": ("POST", "/api/preprocess", {"width": 10, "height": 10, "pixels": [0.0] * 99}, 400, "expected 100"),
    "drawing too wide": ("POST", "/api/preprocess", {"width": 5000, "height": 1, "pixels": [1.0] * 5000}, 400, "'width' must be a whole number from 1 to 1024"),
    "drawing width not a number": ("POST", "/api/preprocess", {"width": "10", "height": 1, "pixels": [1.0] * 10}, 400, "'width'"),
    "blank drawing": ("POST", "/api/preprocess", {"width": 10, "height": 10, "pixels": [0.0] * 100}, 422, "blank"),
    "mistakes of an unknown model": ("GET", "/api/mistakes?model=nope", None, 404, "unknown model 'nope'"),
    "mistakes digit 10": ("GET", "/api/mistakes?model=chapter1&true=10", None, 400, "'true' must be a whole number from 0 to 9"),
    "mistakes limit 0": ("GET", "/api/mistakes?model=chapter1&limit=0", None, 400, "'limit'"),
    "mistakes offset text": ("GET", "/api/mistakes?model=chapter1&offset=" + "9" * 5000, None, 400, "'offset'"),
    "GET predict": ("GET", "/api/predict", None, 405, "Method Not Allowed"),
    "unknown route": ("GET", "/api/nothing", None, 404, "Not Found"),
    "static traversal": ("GET", "/static/../__init__.py", None, 404, "Not Found"),
    "static encoded traversal": ("GET", "/static/%2e%2e%2fapp.py", None, 404, "Not Found"),
    "static other package file": ("GET", "/static/__init__.py", None, 404, "Not Found"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_requests_get_a_4xx_and_one_message(server, case):
    method, path, body, expected_status, fragment = BAD_REQUESTS[case]
    raw = body if isinstance(body, bytes) else None
    status, data, kind = call(server, method, path, None if raw is not None else body, raw)
    assert status == expected_status, (status, data)
    assert kind.startswith("application/json") and list(data) == ["error"]
    message = data["error"]
    assert isinstance(message, str) and message and "\n" not in message and "Traceback" not in message
    assert fragment in message, message


def test_only_loopback_names_are_served(server):
    port = urlsplit(server).port
    for name, expected in (("localhost", 200), ("127.0.0.1", 200), ("attacker.example", 400)):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/api/models", headers={"Host": f"{name}:{port}"})
        response = conn.getresponse()
        response.read()
        conn.close()
        assert response.status == expected, name


def test_the_server_still_answers_after_bad_requests(server):
    status, data, _ = call(server, "POST", "/api/predict", {"model": "eta0.5", "pixels": PIXELS})
    assert status == 200 and math.isclose(sum(data["probabilities"]), 1.0, abs_tol=1e-9)


# -- the command line around the server --------------------------------------------------------
def _one_line_error(capsys, argv, *fragments, code=1):
    assert cli.main(argv) == code
    err = capsys.readouterr().err
    assert err.startswith("nndl: error:") and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err


def test_serve_errors_before_serving(tmp_path, capsys, trained):
    _one_line_error(capsys, ["serve", str(tmp_path / "missing.npz"), "--port", "0"], "missing.npz does not exist")
    (tmp_path / "bad.json").write_text("[1, 2]")
    _one_line_error(capsys, ["serve", "--history", str(tmp_path / "bad.json"), "--port", "0"], "not an nndl history")
    _one_line_error(capsys, ["serve", str(trained["chapter1_history"]), "--port", "0"], "chapter1.json")
    _one_line_error(capsys, ["serve", "--history", str(trained["chapter1_history"]), str(trained["chapter1"])],
                    "name the models before --history")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        _one_line_error(capsys, ["serve", "--port", str(port)], f"cannot listen on 127.0.0.1 port {port}")
    with pytest.raises(SystemExit) as info:
        cli.main(["serve", "--port", "70000"])
    assert info.value.code == 2 and "expected a port number" in capsys.readouterr().err


def test_serve_without_models_still_preprocesses(tmp_path, trained):
    proc, url = _start_server("--history", str(trained["chapter1_history"]), log=tmp_path / "log.txt")
    try:
        assert call(url, "GET", "/api/models")[1] == {"models": [], "test_images": 0}
        status, data, _ = call(url, "POST", "/api/preprocess", {"width": 2, "height": 2, "pixels": [1, 0, 0, 0]})
        assert status == 200 and len(data["image"]) == 784
        assert call(url, "POST", "/api/predict", {"model": "x", "pixels": PIXELS})[1] == {
            "error": "unknown model 'x'; loaded models: none (start nndl serve with a model file)"}
    finally:
        proc.terminate()
        proc.wait(timeout=20)


# -- in the browser -----------------------------------------------------------------------------
# Digits as strokes of (x, y) points on the 280x280 canvas, drawn the way a person would.
DIGITS = {
    1: [[(150, 40), (146, 90), (142, 140), (138, 190), (135, 240)]],
    0: [[(140 + 60 * math.sin(2 * math.pi * t / 24), 140 - 95 * math.cos(2 * math.pi * t / 24)) for t in range(26)]],
    7: [[(70, 50), (140, 50), (210, 50)], [(210, 50), (180, 115), (150, 180), (125, 240)]],
}


@pytest.fixture(scope="module")
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} missing: apt-get install chromium (.ci/run does)")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM))
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1100, "height": 760})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(server)
    page.wait_for_selector("body[data-ready='1']")
    yield page
    context.close()
    assert not errors, errors  # no script errors along the way


def _screenshot(page, tmp_path, name, for_docs=True):
    """Save a screenshot in the test's folder, and with NNDL_SCREENSHOTS=DIR as DIR/serve-NAME.png."""
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path))
    assert path.stat().st_size < 200_000  # small enough for the README
    docs = os.environ.get("NNDL_SCREENSHOTS")
    if docs and for_docs:
        Path(docs).mkdir(parents=True, exist_ok=True)
        (Path(docs) / f"serve-{name}.png").write_bytes(path.read_bytes())


def _draw(page, strokes):
    """Draw stroke by stroke with the mouse, waiting after each for the page's answer."""
    box = page.locator("#pad").bounding_box()
    for k, stroke in enumerate(strokes, 1):
        page.mouse.move(box["x"] + stroke[0][0], box["y"] + stroke[0][1])
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(box["x"] + x, box["y"] + y, steps=4)
        page.mouse.up()
        page.wait_for_selector(f"body[data-strokes='{k}']", timeout=20000)


def test_browser_draw_recognises_1_0_and_7(page, tmp_path):
    assert page.locator("#model option").all_text_contents() == ["chapter1", "eta0.5"]
    for digit, strokes in DIGITS.items():
        page.click("#clear")
        _draw(page, strokes)
        assert page.text_content("#prediction") == str(digit)
        p = [float(v) for v in page.eval_on_selector_all(".bar", "bars => bars.map(b => b.dataset.p)")]
        assert len(p) == 10 and math.isclose(sum(p), 1.0, abs_tol=1e-6)
        assert max(p) == p[digit] and p[digit] > 0.5
        # the three preprocessing steps are drawn: the 28x28 input has ink (dark pixels)
        dark = page.evaluate("""() => { const d = document.getElementById('step-input').getContext('2d')
                                  .getImageData(0, 0, 28, 28).data; let n = 0;
                                  for (let i = 0; i < d.length; i += 4) n += d[i] < 128; return n; }""")
        assert 20 < dark < 400
        _screenshot(page, tmp_path, f"draw-{digit}" if digit != 7 else "draw", for_docs=digit == 7)
    # switching the model asks the other network about the same drawing
    assert page.get_attribute("body", "data-answered-by") == "chapter1"
    page.select_option("#model", "eta0.5")
    page.wait_for_selector("body[data-answered-by='eta0.5']")
    p = [float(v) for v in page.eval_on_selector_all(".bar", "bars => bars.map(b => b.dataset.p)")]
    assert math.isclose(sum(p), 1.0, abs_tol=1e-6) and page.text_content("#prediction") == str(int(np.argmax(p)))
    page.click("#clear")
    assert page.text_content("#prediction") == "–" and page.locator(".bar").count() == 0


def test_browser_draw_by_touch(browser, server):
    # real touch events (Chromium's input pipeline, through the DevTools protocol), not mouse events
    context = browser.new_context(viewport={"width": 420, "height": 800}, has_touch=True, is_mobile=True)
    try:
        page = context.new_page()
        page.goto(server)
        page.wait_for_selector("body[data-ready='1']")
        box = page.locator("#pad").bounding_box()
        cdp = context.new_cdp_session(page)
        stroke = DIGITS[1][0]
        for kind, (x, y) in zip(["touchStart"] + ["touchMove"] * (len(stroke) - 1), stroke):
            cdp.send("Input.dispatchTouchEvent",
                     {"type": kind, "touchPoints": [{"x": box["x"] + x, "y": box["y"] + y}]})
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
        page.wait_for_selector("body[data-strokes='1']", timeout=20000)
        assert page.text_content("#prediction") == "1"
    finally:
        context.close()


def test_browser_mistakes_count_equals_nndl_evaluate(page, trained, tmp_path):
    out = subprocess.run([sys.executable, "-m", "nndl.cli", "evaluate", str(trained["chapter1"])],
                         capture_output=True, text=True, env=dict(os.environ, NNDL_DATA=str(MNIST_DIR)), check=True).stdout
    correct = int(re.search(r"(\d+) / 10000 correct", out).group(1))
    page.click("nav a[data-view='mistakes']")
    page.wait_for_selector("#mistake-count[data-count]")
    assert int(page.get_attribute("#mistake-count", "data-count")) == 10000 - correct
    assert page.text_content("#mistake-count").startswith(f"{10000 - correct} of 10000 test images misclassified")
    assert page.locator("#grid figure").count() == min(120, 10000 - correct)
    _screenshot(page, tmp_path, "mistakes")
    page.click("#more")  # the next page of mistakes
    page.wait_for_function(f"() => document.querySelectorAll('#grid figure').length === {min(240, 10000 - correct)}")
    # a cell of the confusion matrix filters the grid to its mistakes
    cell = page.locator("#confusion td[data-true='4'][data-predicted='9']")
    n49 = int(cell.text_content() or 0)
    cell.click()
    page.wait_for_function(f"() => document.querySelectorAll('#grid figure').length === {min(n49, 120)}")
    captions = page.locator("#grid figcaption").all_text_contents()
    assert captions and all(c.startswith("4 → 9") for c in captions)
    assert page.input_value("#filter-true") == "4" and page.input_value("#filter-predicted") == "9"


def test_browser_curves_overlay(page, tmp_path):
    page.click("nav a[data-view='curves']")
    page.wait_for_selector("#runs li")
    assert page.locator("#runs li").count() == 3
    # chapter1 and eta0.5 each have validation accuracy and cost; diverged has a training cost
    assert page.locator("#chart-accuracy path").count() == 2 and page.locator("#chart-cost path").count() == 3
    _screenshot(page, tmp_path, "curves")
    page.locator("#runs li", has_text="eta0.5").locator("input").uncheck()
    assert page.locator("#chart-accuracy path").count() == 1 and page.locator("#chart-cost path").count() == 2

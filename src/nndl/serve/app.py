"""The page's routes: three views (Draw, Mistakes, Curves) and the JSON
endpoints behind them.

Everything the server shows is loaded before it starts (models, histories,
the test images) and the static files are read from the package into
memory: a request only picks among those by name, so nothing in a request
reaches the file system. Every endpoint validates its input and answers a
bad request with a 4xx status and ``{"error": "<one message>"}``.

Endpoints:

    GET  /api/models                      the loaded models
    POST /api/preprocess                  {"width": W, "height": H, "pixels": [W*H ink values in 0..1]}
                                          -> the MNIST preprocessing steps (nndl.data.preprocess)
    POST /api/predict                     {"model": NAME, "pixels": [784 ink values in 0..1]}
                                          -> probabilities of the digits 0..9
    GET  /api/mistakes?model=NAME&true=D&predicted=D&offset=0&limit=100
                                          -> misclassified test images and the confusion matrix
    GET  /api/histories                   the training histories given with --history
"""

from __future__ import annotations

import base64
import json
import math
import threading
from dataclasses import dataclass, field
from importlib import resources
from typing import Sequence

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..data.augment import to_bytes
from ..data.preprocess import mnist_preprocess
from ..errors import ConfigError
from ..history import METRIC_KEYS, History
from ..network import Network
from ..predictions import Mistakes, find_mistakes, probabilities

MAX_BODY = 2 * 1024 * 1024  #: bytes; a 280x280 drawing takes about 0.2 MB
MAX_DRAIN = 64 * 1024 * 1024  #: bytes of a too-large body read (and dropped) before answering 413
MAX_SIDE = 1024  #: the largest drawing side /api/preprocess takes
PAGE_LIMIT = 500  #: the most mistakes one /api/mistakes answer lists
STATIC = {  # file name -> content type; the only files the server sends
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}


@dataclass
class Store:
    """What the page shows, loaded before the server starts.

    Attributes:
        models: name -> network (784 inputs, 10 outputs), in command-line order.
        histories: name -> training history.
        test: ``(x, y)`` of the test images ``(N, 784)`` and labels ``(N,)``,
            or None when no model was given (the Mistakes view is then empty).
    """

    models: dict[str, Network]
    histories: dict[str, History] = field(default_factory=dict)
    test: tuple[np.ndarray, np.ndarray] | None = None
    _mistakes: dict[str, Mistakes] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def model(self, name) -> Network:
        if not isinstance(name, str) or name not in self.models:
            known = ", ".join(self.models) or "none (start nndl serve with a model file)"
            raise HTTPException(404, f"unknown model {name!r}; loaded models: {known}")
        return self.models[name]

    def mistakes(self, name: str) -> Mistakes:
        """The model's mistakes on the test images, computed once."""
        net = self.model(name)
        if self.test is None:
            raise HTTPException(503, "no test images loaded")
        with self._lock:  # one computation per model, however many requests ask at once
            if name not in self._mistakes:
                self._mistakes[name] = find_mistakes(net, *self.test)
            return self._mistakes[name]


# -- request checking ------------------------------------------------------------
def _reject_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


async def read_json(request: Request, limit: int = MAX_BODY) -> dict:
    """The request body as a JSON object, read up to ``limit`` bytes.

    413 for a larger body, 400 for anything that is not a JSON object; NaN
    and Infinity are refused (JSON has neither). The rest of a body that is
    too large is read and dropped, up to ``MAX_DRAIN``, so that the client
    gets the answer rather than a reset connection; past that the server
    answers at once and the connection closes.
    """
    too_big = HTTPException(413, f"the request body is larger than the {limit // 1024} KiB this server accepts")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_DRAIN:
        raise too_big
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        elif size > MAX_DRAIN:
            break
    if size > limit:
        raise too_big
    try:
        data = json.loads(b"".join(chunks).decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as e:
        raise HTTPException(400, f"the request body is not valid JSON: {e}") from None
    except RecursionError:
        raise HTTPException(400, "the request body nests too deeply to be a request of this page") from None
    if not isinstance(data, dict):
        raise HTTPException(400, f"expected a JSON object, got {type(data).__name__}")
    return data


def _pixels(data: dict, n: int, what: str) -> np.ndarray:
    """``data["pixels"]`` as a float32 array of ``n`` ink values in [0, 1], or 400."""
    pixels = data.get("pixels")
    if not isinstance(pixels, list):
        raise HTTPException(400, f"'pixels' must be a list of {n} numbers ({what})")
    if len(pixels) != n:
        raise HTTPException(400, f"'pixels' has {len(pixels)} value{'s' * (len(pixels) != 1)}; "
                                 f"expected {n} ({what})")
    for i, v in enumerate(pixels):
        if type(v) not in (int, float) or not 0 <= v <= 1:  # bool is not a number here; NaN fails 0 <= v
            raise HTTPException(400, f"pixels[{i}] is {v!r}; every pixel must be a number in [0, 1] "
                                     "(0 = background, 1 = ink)")
    return np.array(pixels, dtype=np.float32)


def _int(value, name: str, low: int, high: int) -> int:
    """A whole number in [low, high] from JSON, or 400."""
    if type(value) is not int or not low <= value <= high:
        raise HTTPException(400, f"{name!r} must be a whole number from {low} to {high}")
    return value


def _query_int(request: Request, name: str, default: str, low: int, high: int) -> int:
    """A whole number in [low, high] from the query string, or 400."""
    text = request.query_params.get(name, default)
    try:
        value = int(text) if text.isascii() and text.isdigit() else None
    except ValueError:  # more digits than Python converts
        value = None
    return _int(value, name, low, high)


def _query_digit(request: Request, name: str) -> int | None:
    """A digit filter from the query string: 0-9, or None for "" or "any"."""
    if request.query_params.get(name, "") in ("", "any"):
        return None
    return _query_int(request, name, "", 0, 9)


# -- endpoints ---------------------------------------------------------------------
def _static(name: str, body: bytes):
    async def endpoint(request: Request) -> Response:
        return Response(body, media_type=STATIC[name], headers={"Cache-Control": "no-cache"})
    return endpoint


def _describe(net: Network) -> str:
    from ..architecture import describe

    return f"{describe(net.layers, net.input_shape)}, {net.cost.name} cost"


def create_app(store: Store, allowed_hosts: Sequence[str] | None = None) -> Starlette:
    """The Starlette application serving ``store``.

    ``allowed_hosts``: the names the page may be asked for by (the ``Host``
    header), e.g. ``["127.0.0.1", "localhost"]``, so that a web site whose
    name was re-pointed at 127.0.0.1 (DNS rebinding) cannot read the API;
    None accepts any.
    """
    files = {name: resources.files(__package__).joinpath("static", name).read_bytes() for name in STATIC}

    async def models(request: Request) -> Response:
        return JSONResponse({"models": [{"name": name, "description": _describe(net), "params": net.n_params}
                                        for name, net in store.models.items()],
                             "test_images": 0 if store.test is None else len(store.test[1])})

    async def preprocess(request: Request) -> Response:
        data = await read_json(request)
        width = _int(data.get("width"), "width", 1, MAX_SIDE)
        height = _int(data.get("height"), "height", 1, MAX_SIDE)
        image = _pixels(data, width * height, f"height {height} x width {width}, row by row").reshape(height, width)
        try:
            steps = mnist_preprocess(image)
        except ConfigError as e:
            raise HTTPException(422, str(e)) from None
        return JSONResponse({"box": list(steps.box), "fitted": {"height": steps.fitted.shape[0],
                                                                "width": steps.fitted.shape[1],
                                                                "pixels": _rounded(steps.fitted)},
                             "image": _rounded(steps.image)})

    async def predict(request: Request) -> Response:
        data = await read_json(request)
        net = store.model(data.get("model"))
        x = _pixels(data, 784, "a 28x28 image, row by row")
        p, rescaled = await run_in_threadpool(probabilities, net, x[None, :])
        p = p[0]
        return JSONResponse({"model": data["model"], "prediction": int(p.argmax()),
                             "probabilities": [float(v) for v in p], "rescaled": rescaled})

    async def mistakes(request: Request) -> Response:
        q = request.query_params
        name = q.get("model")
        true, predicted = _query_digit(request, "true"), _query_digit(request, "predicted")
        offset = _query_int(request, "offset", "0", 0, 10**9)
        limit = _query_int(request, "limit", "100", 1, PAGE_LIMIT)
        store.model(name)
        m = await run_in_threadpool(store.mistakes, name)
        chosen = m.select(true, predicted)
        page = chosen[offset:offset + limit]
        # the page's images as MNIST's bytes (pixel * 256), base64, for the page to paint on a canvas
        images = to_bytes(store.test[0][m.indices[page]])
        items = [{"index": int(m.indices[i]), "true": int(m.true[i]), "predicted": int(m.predicted[i]),
                  "confidence": float(m.confidence[i]), "image": base64.b64encode(image.tobytes()).decode("ascii")}
                 for i, image in zip(page, images)]
        return JSONResponse({"model": name, "total": m.total, "count": len(m), "correct": m.correct,
                             "matching": int(len(chosen)), "offset": offset, "items": items,
                             "confusion": m.confusion.tolist()})

    async def histories(request: Request) -> Response:
        return JSONResponse({"histories": [{"name": name, "epochs": h.epochs, "data": _finite(h.data)}
                                           for name, h in store.histories.items()]})

    async def error(request: Request, exc: HTTPException) -> Response:
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    routes = [Route("/", _static("index.html", files["index.html"]))]
    routes += [Route(f"/static/{name}", _static(name, body)) for name, body in files.items()]
    routes += [
        Route("/api/models", models),
        Route("/api/preprocess", preprocess, methods=["POST"]),
        Route("/api/predict", predict, methods=["POST"]),
        Route("/api/mistakes", mistakes),
        Route("/api/histories", histories),
    ]
    middleware = [] if allowed_hosts is None else [Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))]
    return Starlette(routes=routes, exception_handlers={HTTPException: error}, middleware=middleware)


def _rounded(a: np.ndarray) -> list[float]:
    """Pixels for the page, to 4 decimals (keeps the JSON small)."""
    return [round(float(v), 4) for v in np.asarray(a).reshape(-1)]


def _finite(data: dict) -> dict:
    """A history's per-epoch number lists (accuracies, costs, times, eta),
    with non-finite values (a diverged cost) as null: JSON has no NaN."""
    return {k: [v if isinstance(v, (int, float)) and math.isfinite(v) else None for v in values]
            for k, values in data.items() if k in METRIC_KEYS + ("epoch_seconds", "eta")}

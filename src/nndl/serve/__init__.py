"""``nndl serve``: a local web page to see what a network sees.

Three views: **Draw** (draw a digit, watch MNIST's preprocessing and the
network's probabilities), **Mistakes** (the misclassified test images and
the confusion matrix) and **Curves** (training histories). The page is
plain HTML, CSS and a small hand-written script in ``static/``, served with
Starlette on uvicorn; it needs no internet.

    store = load_store(["net.npz"], ["run.json"])
    app = create_app(store)          # an ASGI application
    run(app, socket)                 # serve until Ctrl-C
"""

from __future__ import annotations

import socket as socket_mod
from pathlib import Path
from typing import Sequence

from ..history import History
from ..io import load
from ..predictions import check_mnist_network
from .app import MAX_BODY, Store, create_app

__all__ = ["Store", "create_app", "load_store", "bind", "run", "MAX_BODY"]


def _unique_names(paths: Sequence[Path]) -> list[str]:
    """File stems, with ``-2``, ``-3`` ... added where two are the same."""
    names: list[str] = []
    for p in paths:
        name, k = p.stem or "model", 2
        while name in names:
            name, k = f"{p.stem}-{k}", k + 1
        names.append(name)
    return names


def load_store(models: Sequence[str | Path] = (), histories: Sequence[str | Path] = (), *,
               data_dir=None, progress: bool = False) -> Store:
    """Load everything the page shows, failing early on a bad file.

    Args:
        models: model files (nndl ``.npz`` or the book's JSON, see
            :func:`nndl.load`); each is named on the page by its file stem.
        histories: history JSON files (:meth:`nndl.History.from_json`).
        data_dir: where MNIST is (see :func:`nndl.data.load_mnist`); the
            test images are loaded only when there is a model.

    Raises:
        ModelFileError, ConfigError, NNDLError, DataError: a file that cannot
            be used, with its name in the message.
    """
    model_paths, history_paths = [Path(p) for p in models], [Path(p) for p in histories]
    nets = {}
    for name, path in zip(_unique_names(model_paths), model_paths):
        net = load(path)
        check_mnist_network(net, str(path))
        nets[name] = net
    hists = {name: History.from_json(path) for name, path in zip(_unique_names(history_paths), history_paths)}
    test = None
    if nets:
        from ..data import load_mnist

        ds = load_mnist(data_dir, progress=progress).test
        test = (ds.x, ds.y)
    return Store(nets, hists, test)


def bind(host: str = "127.0.0.1", port: int = 8000) -> socket_mod.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free port).

    Binding before the server starts lets the caller report the real port,
    and report "address already in use" as a plain error.
    """
    family, kind, proto, _, address = socket_mod.getaddrinfo(host, port, type=socket_mod.SOCK_STREAM)[0]
    sock = socket_mod.socket(family, kind, proto)
    try:
        sock.setsockopt(socket_mod.SOL_SOCKET, socket_mod.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def run(app, sock: socket_mod.socket, log_level: str = "warning") -> None:
    """Serve ``app`` on the bound ``sock`` until interrupted (Ctrl-C or SIGTERM)."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, access_log=False))
    server.run(sockets=[sock])

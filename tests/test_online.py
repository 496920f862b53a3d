"""Online checks ask the host a download would use, through the proxy the environment names.

Each test runs a small proxy (or file server) on 127.0.0.1, so nothing here needs the internet:
`.invalid` host names never resolve, so an answer for one can only have come through the proxy.
"""

from __future__ import annotations

import http.server
import socket
import threading

import keras
import pytest

from dlrecipes import data, online
from dlrecipes.errors import WeightsUnavailable
from dlrecipes.models import bases

PROXY_VARIABLES = ("http_proxy", "https_proxy", "no_proxy", "all_proxy")


class Handler(http.server.BaseHTTPRequestHandler):
    """Records every request line. HEAD: 200. CONNECT: 403, or with `tunnel` set, 200 and then
    bytes that are no TLS, so the client's handshake fails after the tunnel stood."""

    def do_HEAD(self) -> None:
        self.server.seen.append(f"HEAD {self.path}")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_CONNECT(self) -> None:
        self.server.seen.append(f"CONNECT {self.path}")
        if not self.server.tunnel:
            self.send_error(403, "tunnel refused")
            return
        self.send_response(200, "Connection established")
        self.end_headers()
        self.connection.recv(4096)  # the client's TLS hello
        self.connection.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    """Starts servers on 127.0.0.1; each has `.seen` (request lines) and `.url`."""
    started = []

    def start(tunnel: bool = False) -> http.server.ThreadingHTTPServer:
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        httpd.seen, httpd.tunnel = [], tunnel
        httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        started.append(httpd)
        return httpd

    yield start
    for httpd in started:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def proxy_env(monkeypatch):
    """No proxy variable from the environment running the tests; returns a setter."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)

    def use(**variables: str) -> None:
        for name, value in variables.items():
            monkeypatch.setenv(name, value)

    return use


def test_a_proxy_in_http_proxy_carries_the_request(server, proxy_env):
    proxy = server()
    proxy_env(HTTP_PROXY=proxy.url)
    assert online.reachable("http://files.invalid/data.tar.gz", timeout=10)
    assert proxy.seen == ["HEAD http://files.invalid/data.tar.gz"]


def test_a_proxy_in_https_proxy_is_asked_for_the_host(server, proxy_env):
    refusing = server()
    proxy_env(https_proxy=refusing.url)  # the lower-case form counts too
    assert not online.reachable("https://weights.invalid/model.h5", timeout=10)
    assert refusing.seen == ["CONNECT weights.invalid:443"]

    granting = server(tunnel=True)
    proxy_env(https_proxy=granting.url)
    assert online.reachable("https://weights.invalid/model.h5", timeout=10)
    assert granting.seen == ["CONNECT weights.invalid:443"]


def test_no_proxy_hosts_are_asked_directly(server, proxy_env):
    proxy, files = server(), server()
    proxy_env(HTTP_PROXY=proxy.url, NO_PROXY="localhost,127.0.0.1")
    assert online.reachable(f"{files.url}/data.tar.gz", timeout=10)
    assert files.seen == ["HEAD /data.tar.gz"] and proxy.seen == []


def test_a_host_that_does_not_answer_is_offline(proxy_env):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert not online.reachable(f"http://127.0.0.1:{port}/data.tar.gz", timeout=10)


def test_a_catalog_dataset_is_probed_on_its_own_download_host(server, proxy_env, tmp_path):
    """cifar10 comes from www.cs.toronto.edu, not storage.googleapis.com; behind a proxy that
    refuses it, loading fails at once naming that host."""
    refusing = server()
    proxy_env(HTTPS_PROXY=refusing.url)
    with pytest.raises(data.DatasetError, match="cannot reach www.cs.toronto.edu .*HTTPS_PROXY"):
        data.load("cifar10", data_dir=str(tmp_path))
    assert refusing.seen == ["CONNECT www.cs.toronto.edu:443"]


def test_imagenet_weights_are_probed_where_keras_downloads_them(
    server, proxy_env, tmp_path, monkeypatch
):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # nothing cached
    refusing = server()
    proxy_env(HTTPS_PROXY=refusing.url)
    with pytest.raises(WeightsUnavailable, match="cannot reach it .*HTTPS_PROXY"):
        bases.load("mobilenet_v3_small", input_size=32)
    assert refusing.seen == ["CONNECT storage.googleapis.com:443"]

    # The URL asked is the one Keras fetches: stop Keras at its download and compare.
    class Fetch(Exception):
        pass

    def get_file(fname, origin=None, **kwargs):
        raise Fetch(origin)

    asked = []
    monkeypatch.setattr(online, "reachable", lambda url, *a, **k: asked.append(url) or True)
    monkeypatch.setattr(keras.src.utils.file_utils, "get_file", get_file)
    for name, app in bases.APPLICATIONS.items():
        with pytest.raises(Fetch) as fetched:
            bases.load(name, input_size=32)
        assert fetched.value.args[0] == app.weights_url == asked[-1], name

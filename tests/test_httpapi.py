"""chute.httpapi on a real falcon app: request ids, error mapping, 500 without internals."""

from __future__ import annotations

import falcon
import falcon.testing
import pytest

from chute import errors
from chute.httpapi import RequestIdMiddleware, install_error_handling, negotiate, webob_renderer


class Boom:
    def on_get(self, req, resp):
        raise RuntimeError("secret internal path /etc/shadow")


class Missing:
    def on_get(self, req, resp):
        raise errors.NotFound("No image found with ID x")


@pytest.fixture
def client():
    app = falcon.App(middleware=[RequestIdMiddleware()])
    install_error_handling(app, {errors.NotFound: 404}, webob_renderer)
    app.add_route("/boom", Boom())
    app.add_route("/missing", Missing())
    return falcon.testing.TestClient(app)


def test_unexpected_error_is_500_without_internals(client, caplog):
    resp = client.simulate_get("/boom", headers={"Accept": "application/json"})
    assert resp.status_code == 500
    assert "secret" not in resp.text and "RuntimeError" not in resp.text
    assert resp.json["code"] == "500 Internal Server Error"
    assert resp.headers["x-openstack-request-id"].startswith("req-")
    assert "secret internal path" in caplog.text  # the operator still sees it in the log


def test_mapped_error_and_unknown_route(client):
    assert client.simulate_get("/missing").status_code == 404
    resp = client.simulate_get("/nowhere", headers={"Accept": "application/json"})
    assert resp.status_code == 404 and resp.headers["x-openstack-request-id"].startswith("req-")
    assert resp.json["message"].startswith("The resource could not be found.")
    resp = client.simulate_post("/missing", headers={"Accept": "text/plain"})
    assert resp.status_code == 405 and "GET" in resp.headers["Allow"]
    assert "The method POST is not allowed for this resource." in resp.text


@pytest.mark.parametrize("accept,expected", [
    (None, "text/html"), ("*/*", "text/html"), ("application/json", "application/json"),
    ("application/json, */*", "text/html"),
    ("text/html;q=0.5, application/json", "application/json"),
    ("text/plain", None), ("", None),
])
def test_negotiation_like_webob(accept, expected):
    assert negotiate(accept, ["text/html", "application/json"]) == expected


FORGED = "2030-01-01 00:00:00.000 1 INFO chute.images [-] forged by a client"


def test_a_client_cannot_write_a_log_line_of_its_own(api_server):
    """A percent-encoded newline in the path, a newline in an image name (refused), a
    backslash in one: each request is one line of chute-api's log, with what the client sent
    escaped."""
    import requests

    before = len(api_server.log_text().splitlines())
    from urllib.parse import quote

    path = "/v2/images/x%0A" + quote(FORGED)
    assert requests.get(api_server.url + path, timeout=10).status_code == 404
    refused = requests.post(f"{api_server.url}/v2/images", timeout=10, json={
        "name": "cirros\n" + FORGED, "disk_format": "raw", "container_format": "bare"})
    assert refused.status_code == 400  # a name cannot hold a newline or a bidi override
    name = "cirros\\n" + FORGED + "\u00e9"  # a backslash and an n: escaped, not a newline
    created = requests.post(f"{api_server.url}/v2/images", timeout=10, json={
        "name": name, "disk_format": "raw", "container_format": "bare"})
    assert created.status_code == 201
    lines = api_server.log_text().splitlines()[before:]
    assert not [line for line in lines if line.startswith(FORGED[:10])], lines
    request_lines = [line for line in lines if "chute.http" in line]
    assert len(request_lines) == 3, lines
    assert f"GET {path} status: 404" in request_lines[0]  # the target as sent, not decoded
    escaped = "cirros\\\\n" + FORGED + "\u00e9"
    assert [line for line in lines if escaped in line], lines

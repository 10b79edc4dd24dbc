"""Hostile but well-formed input gets a 4xx that says what was wrong, never a 500 (issue 18
item 5), on real chute-api and chute-compute processes: deeply nested JSON, lone surrogates,
control and bidirectional-override characters and edge whitespace in server names (Nova's name
rule), and a malformed chunk size in the middle of an upload. The explicit cases come first;
then hypothesis generates more of each shape against both APIs (the schemathesis fuzz of
test_fuzz.py draws from the documents' schemas, which never produce these shapes)."""

from __future__ import annotations

import json
import socket

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers.images import JSON, assert_nothing_stored, create, show
from tests.helpers.services import prepare_compute

SEND = {"Content-Type": "application/json", **JSON}
PATCH = {"Content-Type": "application/openstack-images-v2.1-json-patch", **JSON}


@pytest.fixture(scope="module")
def compute(tmp_path_factory):
    """A chute-compute with no image service: every case here is refused before it is asked."""
    server = prepare_compute(tmp_path_factory.mktemp("hostile-compute"))
    yield server.start()
    server.kill()


def nested(depth: int) -> bytes:
    return b'{"a": ' * depth + b"1" + b"}" * depth


def server_body(name: object) -> bytes:
    return json.dumps({"server": {"name": name, "imageRef": "i", "flavorRef": "1"}}).encode()


def glance_message(resp: requests.Response) -> str:
    return resp.json()["message"]


def nova_message(resp: requests.Response) -> str:
    return resp.json()["badRequest"]["message"]


@pytest.mark.parametrize("body", [b"[" * 100_000 + b"]" * 100_000, nested(5000), nested(33),
                                  json.dumps({"name": "x", "p": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[
                                      []]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}).encode()],
                         ids=["brackets-100k", "objects-5000", "objects-33", "in-a-document"])
def test_deeply_nested_json_is_400_on_both_apis(shared_api, compute, body):
    resp = requests.post(shared_api.url + "/v2/images", data=body, headers=SEND, timeout=30)
    assert resp.status_code == 400, resp.text[:300]
    assert glance_message(resp).startswith("JSON in request body is nested deeper than 32 levels.")
    resp = requests.post(compute.url + "/v2.1/servers", data=body, headers=SEND, timeout=30)
    assert resp.status_code == 400, resp.text[:300]
    assert nova_message(resp) == "JSON in request body is nested deeper than 32 levels."


def test_nesting_within_the_limit_is_parsed(shared_api):
    resp = requests.post(shared_api.url + "/v2/images", data=nested(30), headers=SEND, timeout=10)
    assert resp.status_code == 400  # a property that is not a string, as before: not the depth
    assert "nested deeper" not in resp.text


@pytest.mark.parametrize("raw", [
    b'{"name": "\\ud800"}', b'{"name": "ok", "hw_note": "a\\udfffb"}', b'{"\\ud83d": "x"}',
    b'{"name": "x", "tags": ["\\udc00"]}',
], ids=["name", "property", "key", "tag"])
def test_lone_surrogates_in_image_documents_are_400(shared_api, raw):
    resp = requests.post(shared_api.url + "/v2/images", data=raw, headers=SEND, timeout=10)
    assert resp.status_code == 400, resp.text[:300]
    assert "lone surrogate" in glance_message(resp) and "not valid Unicode" in glance_message(resp)


def test_lone_surrogate_in_a_patch_is_400_and_changes_nothing(shared_api):
    image = create(shared_api, name="before")
    ops = b'[{"op": "replace", "path": "/name", "value": "\\ud800"}]'
    resp = requests.patch(f"{shared_api.url}/v2/images/{image['id']}", data=ops, headers=PATCH,
                          timeout=10)
    assert resp.status_code == 400, resp.text[:300]
    assert "lone surrogate \\ud800" in glance_message(resp)
    assert show(shared_api, image["id"])["name"] == "before"


def test_a_valid_surrogate_pair_is_a_character(shared_api):
    image = create(shared_api, name="\U0001f600 smile")
    assert show(shared_api, image["id"])["name"] == "\U0001f600 smile"


@pytest.mark.parametrize("name,why", [
    ("\ud800", "lone surrogate \\ud800 is not valid Unicode."),
    ("evil\u202etxt.exe", "character U+202E is not printable"),
    ("a\u2066b", "character U+2066 is not printable"),
    ("a\x00b", "character U+0000 is not printable"),
    ("a\x1bb", "character U+001B is not printable"),
    ("two\nlines", "character U+000A is not printable"),
    ("tab\there", "character U+0009 is not printable"),
    ("a\u2028b", "character U+2028 is not printable"),
    ("zero\u200bwidth", "character U+200B is not printable"),
    ("a\x7fb", "character U+007F is not printable"),
    (" leading", "it cannot start or end with whitespace."),
    ("trailing ", "it cannot start or end with whitespace."),
    ("\u3000ideographic", "it cannot start or end with whitespace."),
    ("   ", "a non-empty string is required."),
])
def test_server_names_follow_novas_rule(compute, name, why):
    resp = requests.post(compute.url + "/v2.1/servers", data=server_body(name), headers=SEND,
                         timeout=10)
    assert resp.status_code == 400, resp.text[:300]
    assert why in nova_message(resp)


@pytest.mark.parametrize("name", ["vm", "a b", "caf\u00e9-\u65e5\u672c", "x" * 255, "\U0001f600"])
def test_printable_server_names_pass_the_name_check(compute, name):
    resp = requests.post(compute.url + "/v2.1/servers", data=server_body(name), headers=SEND,
                         timeout=10)
    # No image service: the request gets past the name and fails on the image.
    assert resp.status_code in (400, 503), resp.text[:300]
    assert "field/attribute name" not in resp.text


def _raw_chunked_put(api, image_id: str, body: bytes) -> bytes:
    sock = socket.create_connection(("127.0.0.1", api.port), timeout=20)
    head = (f"PUT /v2/images/{image_id}/file HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Accept: application/json\r\nContent-Type: application/octet-stream\r\n"
            "Transfer-Encoding: chunked\r\n\r\n").encode()
    # What follows the bad size line is a whole second request: it must not be served.
    smuggled = b"GET /versions HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    sock.sendall(head + body + smuggled)
    received = b""
    with sock:
        while chunk := sock.recv(65536):  # the server closes the connection
            received += chunk
    return received


@pytest.mark.parametrize("bad", [b"zz\r\n", b"-5\r\n", b"0x10\r\n", b"\r\n", b"5 ; \x01\r\n",
                                 b"4\r\nabcdXY"],
                         ids=["not-hex", "negative", "0x", "empty", "bad-extension",
                              "no-terminator"])
def test_malformed_chunk_mid_upload_is_400_and_nothing_stored(shared_api, bad):
    image = create(shared_api, name="chunked")
    received = _raw_chunked_put(shared_api, image["id"], b"10\r\n" + b"a" * 16 + b"\r\n" + bad)
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), received[:300]
    assert received.count(b"HTTP/1.1 ") == 1, received  # the rest was not read as a request
    # Refused by the front end's parser before any worker saw it (its own page).
    assert b"invalid request" in body, body
    assert_nothing_stored(shared_api, image["id"])


# -- generated cases: more of each shape, on both APIs ------------------------------------

HOSTILE_CHARS = st.characters(categories=["Cc", "Cf", "Cs", "Co", "Zl", "Zp", "Zs"])
HOSTILE_TEXT = st.one_of(
    st.text(HOSTILE_CHARS, min_size=1, max_size=8),
    st.tuples(st.text(max_size=5), st.text(HOSTILE_CHARS, min_size=1, max_size=3),
              st.text(max_size=5)).map("".join),
)
# For server names: a character Nova refuses anywhere, or whitespace at an edge.
REFUSED_NAME = st.one_of(
    st.tuples(st.text(max_size=5),
              st.text(st.characters(categories=["Cc", "Cf", "Cs", "Co", "Zl", "Zp"]),
                      min_size=1, max_size=3),
              st.text(max_size=5)).map("".join),
    st.tuples(st.text(st.characters(categories=["Zs", "Cc"]), min_size=1, max_size=2),
              st.text(min_size=1, max_size=5)).map("".join),
    st.tuples(st.text(min_size=1, max_size=5),
              st.text(st.characters(categories=["Zs"]), min_size=1, max_size=2)).map("".join),
)
DEPTH = st.integers(min_value=33, max_value=3000)
FUZZ = settings(max_examples=60, derandomize=True, database=None, deadline=None,
                suppress_health_check=list(HealthCheck))


def _document(field: str, value: str) -> bytes:
    return json.dumps({"name": "fuzz", field: value} if field != "name" else {"name": value}
                      ).encode()


def test_generated_hostile_images_requests_are_never_500(shared_api):
    session = requests.Session()
    image = create(shared_api, name="fuzz-target")

    @FUZZ
    @given(field=st.sampled_from(["name", "hw_note", "os_distro"]), text=HOSTILE_TEXT,
           depth=DEPTH, shape=st.sampled_from(["create", "patch", "deep"]))
    def run(field, text, depth, shape):
        if shape == "create":
            resp = session.post(shared_api.url + "/v2/images", data=_document(field, text),
                                headers=SEND, timeout=10)
        elif shape == "patch":
            ops = [{"op": "add", "path": f"/{field}", "value": text}]
            resp = session.patch(f"{shared_api.url}/v2/images/{image['id']}",
                                 data=json.dumps(ops), headers=PATCH, timeout=10)
        else:
            resp = session.post(shared_api.url + "/v2/images", data=nested(depth),
                                headers=SEND, timeout=10)
        assert resp.status_code < 500, (shape, field, ascii(text), resp.text[:300])
        if resp.status_code >= 400:
            assert glance_message(resp).strip(), resp.text

    run()


def test_generated_hostile_server_names_are_400(compute):
    session = requests.Session()

    @FUZZ
    @given(text=REFUSED_NAME)
    def run(text):
        resp = session.post(compute.url + "/v2.1/servers", data=server_body(text),
                            headers=SEND, timeout=10)
        assert resp.status_code == 400, (ascii(text), resp.text[:300])
        assert "name" in nova_message(resp) or "lone surrogate" in nova_message(resp)

    run()


@given(depth=DEPTH)
@FUZZ
def test_generated_deep_bodies_are_400_on_compute(compute, depth):
    resp = requests.post(compute.url + "/v2.1/servers", data=b"[" * depth + b"]" * depth,
                         headers=SEND, timeout=10)
    assert resp.status_code == 400, resp.text[:300]


HOSTILE_IMAGE_NAMES = ["evil\u202etxt.exe", "a\u2066b", "a\u200eb", "a\x00b", "a\x1b[2Jb",
                       "two\nlines", "tab\there", "a\x85b", "a\u2028b", "a\x7fb"]


@pytest.mark.parametrize("name", HOSTILE_IMAGE_NAMES)
def test_image_names_with_controls_or_bidi_formatting_are_400(shared_api, name):
    created = requests.post(shared_api.url + "/v2/images", data=json.dumps({"name": name}),
                            headers=SEND, timeout=10)
    assert created.status_code == 400, created.text[:300]
    assert "name: U+" in created.text and "control or bidirectional" in created.text
    image = create(shared_api, name="fine")
    patched = requests.patch(f"{shared_api.url}/v2/images/{image['id']}",
                             data=json.dumps([{"op": "replace", "path": "/name", "value": name}]),
                             headers=PATCH, timeout=10)
    assert patched.status_code == 400, patched.text[:300]
    assert show(shared_api, image["id"])["name"] == "fine"


@pytest.mark.parametrize("name", ["caf\u00e9 \u65e5\u672c", "\U0001f600", "a\u200db", "x" * 255])
def test_printable_image_names_are_kept(shared_api, name):
    assert show(shared_api, create(shared_api, name=name)["id"])["name"] == name

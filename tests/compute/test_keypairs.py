"""os-keypairs on a real chute-compute: generated and imported keys, Nova's rules, shapes by
microversion, and openstacksdk's keypair calls."""

import openstack
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.helpers.servers import nova
from tests.helpers.services import compute_on_database, prepare_compute


@pytest.fixture(scope="module")
def compute(tmp_path_factory, database_url):
    server = prepare_compute(tmp_path_factory.mktemp("compute-keys"),
                             **compute_on_database(database_url(), {}))
    yield server.start()
    server.kill()


def public_openssh() -> str:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(serialization.Encoding.OpenSSH,
                            serialization.PublicFormat.OpenSSH).decode()


def test_a_generated_key_is_returned_once_and_its_halves_match(compute):
    resp = nova(compute, "POST", "/os-keypairs", json={"keypair": {"name": "gen"}})
    assert resp.status_code == 201
    doc = resp.json()["keypair"]
    private = serialization.load_pem_private_key(doc["private_key"].encode(), None)
    public = private.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                               serialization.PublicFormat.OpenSSH).decode()
    assert doc["public_key"].startswith(public) and doc["type"] == "ssh"
    assert len(doc["fingerprint"].split(":")) == 16
    shown = nova(compute, "GET", "/os-keypairs/gen").json()["keypair"]
    assert "private_key" not in shown
    assert (shown["fingerprint"], shown["public_key"]) == (doc["fingerprint"],
                                                           doc["public_key"])
    assert shown["deleted"] is False and shown["created_at"]


def test_import_list_show_delete(compute):
    key = public_openssh()
    resp = nova(compute, "POST", "/os-keypairs",
                json={"keypair": {"name": "imported key", "public_key": key}})
    assert resp.status_code == 201 and "private_key" not in resp.json()["keypair"]
    listed = nova(compute, "GET", "/os-keypairs").json()["keypairs"]
    assert {"name": "imported key", "public_key": key, "type": "ssh",
            "fingerprint": resp.json()["keypair"]["fingerprint"]} in [k["keypair"]
                                                                     for k in listed]
    assert nova(compute, "DELETE", "/os-keypairs/imported key").status_code == 204
    gone = nova(compute, "GET", "/os-keypairs/imported key")
    assert gone.status_code == 404
    assert gone.json()["itemNotFound"]["message"] == ("Keypair imported key not found for "
                                                      "user ")


def test_shapes_at_2_1(compute):
    resp = nova(compute, "POST", "/os-keypairs", None,
                json={"keypair": {"name": "old", "public_key": public_openssh()}})
    assert resp.status_code == 200 and "type" not in resp.json()["keypair"]
    assert nova(compute, "DELETE", "/os-keypairs/old", None).status_code == 202


@pytest.mark.parametrize("body, status, message", [
    ({"keypair": {"name": "bad/name"}}, 400,
     "Keypair data is invalid: Keypair name contains unsafe characters"),
    ({"keypair": {"name": ""}}, 400, "between 1 and 255 characters long"),
    ({"keypair": {"name": "k", "public_key": "ssh-rsa notakey"}}, 400,
     "Keypair data is invalid: failed to generate fingerprint"),
    ({"keypair": {"name": "k", "type": "x509"}}, 400, "ssh keypairs only"),
    ({"keypair": {"name": "k", "colour": "red"}}, 400, "'colour' was unexpected"),
    ({"name": "k"}, 400, "{\"keypair\": {...}}"),
])
def test_bad_keypairs_are_refused(compute, body, status, message):
    resp = nova(compute, "POST", "/os-keypairs", json=body)
    assert resp.status_code == status
    (fault,) = resp.json().values()
    assert message in fault["message"]


def test_a_duplicate_name_is_a_conflict(compute):
    body = {"keypair": {"name": "twice", "public_key": public_openssh()}}
    assert nova(compute, "POST", "/os-keypairs", json=body).status_code == 201
    again = nova(compute, "POST", "/os-keypairs", json=body)
    assert again.status_code == 409
    assert again.json() == {"conflictingRequest": {
        "code": 409, "message": "Key pair 'twice' already exists."}}


def test_paging_from_2_35(compute):
    for n in range(3):
        nova(compute, "POST", "/os-keypairs",
             json={"keypair": {"name": f"page{n}", "public_key": public_openssh()}})
    first = nova(compute, "GET", "/os-keypairs?limit=2").json()
    assert len(first["keypairs"]) == 2
    (link,) = first["keypairs_links"]
    marker = first["keypairs"][-1]["keypair"]["name"]
    assert link["href"].endswith(f"limit=2&marker={marker}")
    rest = nova(compute, "GET", f"/os-keypairs?marker={marker}").json()["keypairs"]
    names = [k["keypair"]["name"] for k in first["keypairs"] + rest]
    assert names == sorted(names) and {"page0", "page1", "page2"} <= set(names)


def test_openstacksdk_keypairs(compute):
    conn = openstack.connection.Connection(
        auth_type="none", auth={"endpoint": compute.url},
        compute_endpoint_override=compute.url + "/v2.1")
    made = conn.compute.create_keypair(name="sdk")
    assert made.private_key.startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert conn.compute.get_keypair("sdk").fingerprint == made.fingerprint
    assert "sdk" in [k.name for k in conn.compute.keypairs()]
    conn.compute.delete_keypair("sdk", ignore_missing=False)
    with pytest.raises(openstack.exceptions.NotFoundException):
        conn.compute.get_keypair("sdk")


def test_keypairs_are_per_user_and_2_10_names_the_user(compute):
    made = nova(compute, "POST", "/os-keypairs", "2.10",
                json={"keypair": {"name": "alices", "user_id": "alice",
                                  "public_key": public_openssh()}})
    assert made.status_code == 201 and made.json()["keypair"]["user_id"] == "alice"
    mine = [k["keypair"]["name"] for k in nova(compute, "GET", "/os-keypairs").json()[
        "keypairs"]]
    assert "alices" not in mine
    assert nova(compute, "GET", "/os-keypairs/alices").status_code == 404
    hers = nova(compute, "GET", "/os-keypairs?user_id=alice").json()["keypairs"]
    assert [k["keypair"]["name"] for k in hers] == ["alices"]
    assert nova(compute, "GET", "/os-keypairs/alices?user_id=alice").json()["keypair"][
        "user_id"] == "alice"
    assert nova(compute, "DELETE", "/os-keypairs/alices?user_id=alice").status_code == 204
    assert nova(compute, "GET", "/os-keypairs?user_id=alice").json()["keypairs"] == []

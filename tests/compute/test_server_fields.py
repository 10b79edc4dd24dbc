"""POST /servers: every field Nova accepts is honoured (and shows in the server document) or
refused with a 400 that names it; nothing is accepted and dropped. Real chute-compute on the
session's chute-api."""

import base64

import pytest

from tests.helpers.servers import boot_body, nova, wait_built

UNCHANGED = "the server list did not change"


def servers(compute):
    return {s["id"] for s in nova(compute, "GET", "/servers").json()["servers"]}


def refused(compute, body, fragment, version="2.79", status=400):
    before = servers(compute)
    resp = nova(compute, "POST", "/servers", version, json=body)
    assert resp.status_code == status, resp.text
    (fault,) = resp.json().values()
    assert fragment in fault["message"]
    assert servers(compute) == before, UNCHANGED


def test_honoured_fields_are_in_the_server_document(booting):
    compute, image = booting
    key = nova(compute, "POST", "/os-keypairs", json={"keypair": {"name": "k1"}}).json()
    user_data = base64.b64encode(b"#!/bin/sh\necho hello\n").decode()
    body = boot_body(image, "full", key_name="k1", user_data=user_data,
                     metadata={"role": "web", "tier": "1"}, availability_zone="nova",
                     tags=["a", "b"], description="the one", config_drive=False,
                     security_groups=[{"name": "default"}], adminPass="s3cret")
    created = nova(compute, "POST", "/servers", json=body)
    assert created.status_code == 202, created.text
    assert created.json()["server"]["adminPass"] == "s3cret"
    doc = wait_built(compute, created.json()["server"]["id"])
    shown = nova(compute, "GET", f"/servers/{doc['id']}").json()["server"]
    assert shown["status"] == "ACTIVE"
    assert shown["key_name"] == "k1" and key["keypair"]["name"] == "k1"
    assert shown["metadata"] == {"role": "web", "tier": "1"}
    assert shown["OS-EXT-AZ:availability_zone"] == "nova"
    assert shown["tags"] == ["a", "b"] and shown["description"] == "the one"
    assert shown["config_drive"] == "True"  # user_data and a key travel on the drive
    assert "adminPass" not in shown and "user_data" not in shown
    at_21 = nova(compute, "GET", f"/servers/{doc['id']}", None).json()["server"]
    assert "tags" not in at_21 and "description" not in at_21
    assert at_21["flavor"]["id"] == "1"
    assert shown["flavor"] == {"vcpus": 1, "ram": 512, "disk": 1, "ephemeral": 0, "swap": 0,
                               "original_name": "m1.tiny", "extra_specs": {}}


def test_min_and_max_count_boot_numbered_servers(booting):
    compute, image = booting
    resp = nova(compute, "POST", "/servers", json=boot_body(image, "many", min_count=2,
                                                               max_count=3))
    assert resp.status_code == 202, resp.text
    names = sorted(s["name"] for s in nova(compute, "GET", "/servers").json()["servers"]
                   if s["name"].startswith("many"))
    assert names == ["many-1", "many-2", "many-3"]


@pytest.mark.parametrize("fields, fragment", [
    ({"key_name": "nobody"}, "Invalid key_name provided."),
    ({"availability_zone": "elsewhere"}, "The requested availability zone is not available"),
    ({"availability_zone": "nova:host1"}, "no scheduler"),
    ({"user_data": "not base64!"}, "User data needs to be valid base 64."),
    ({"user_data": "A" * 65536}, "User data too large"),
    ({"metadata": {"k": 1}}, "the value of 'k' must be a string"),
    ({"metadata": {"": "v"}}, "field/attribute metadata"),
    ({"tags": ["a/b"]}, "without '/'"),
    ({"tags": [f"t{n}" for n in range(51)]}, "per-server limit 50"),
    ({"networks": [{"uuid": "4e7c1f5e-0000-4000-8000-000000000001"}]},
     "chute-compute has one network per host"),
    ({"networks": [{"port": "p1"}]}, "chute-compute has one network per host"),
    ({"networks": "public"}, "field/attribute networks"),
    ({"security_groups": [{"name": "web"}]}, "chute-compute has no firewall"),
    ({"block_device_mapping_v2": [{"source_type": "volume", "uuid": "v1",
                                   "boot_index": 0, "destination_type": "volume"}]},
     "chute-compute has no volumes"),
    ({"block_device_mapping": [{"volume_id": "v1"}]}, "block_device_mapping"),
    ({"accessIPv4": "192.0.2.1"}, "accessIPv4"),
    ({"OS-DCF:diskConfig": "AUTO"}, "OS-DCF:diskConfig"),
    ({"trusted_image_certificates": ["c"]}, "trusted_image_certificates"),
    ({"host": "h1"}, "host is not supported"),
    ({"return_reservation_id": True}, "return_reservation_id"),
    ({"min_count": 3, "max_count": 2}, "min_count must be <= max_count"),
    ({"max_count": 101}, "at most 100 servers"),
    ({"config_drive": "maybe"}, "field/attribute config_drive"),
    ({"flavour": "1"}, "'flavour' was unexpected"),
])
def test_unsupported_or_bad_fields_are_refused_naming_them(booting, fields, fragment):
    compute, image = booting
    refused(compute, boot_body(image, **fields), fragment)


def test_metadata_beyond_novas_quota_is_forbidden(booting):
    compute, image = booting
    refused(compute, boot_body(image, metadata={f"k{n}": "v" for n in range(129)}),
            "Maximum number of metadata items exceeds 128", status=403)


def test_scheduler_hints_are_refused(booting):
    compute, image = booting
    refused(compute, {**boot_body(image), "os:scheduler_hints": {"group": "g"}},
            "os:scheduler_hints")


def test_fields_follow_the_microversion(booting):
    compute, image = booting
    body = boot_body(image)
    del body["server"]["networks"]
    refused(compute, body, "'networks' is a required property", version="2.37")
    refused(compute, boot_body(image, tags=["x"]), "'tags' was unexpected", version="2.51")
    refused(compute, boot_body(image), "field/attribute networks", version="2.36")
    refused(compute, boot_body(image, personality=[{"path": "/etc/x", "contents": ""}]),
            "'personality' was unexpected", version="2.57")
    old = {"server": {"name": "old", "imageRef": image, "flavorRef": "1",
                      "personality": [{"path": "/etc/x", "contents": ""}]}}
    refused(compute, old, "does not inject files", version=None)


def test_networks_none_and_auto_and_the_image_boot_mapping_are_accepted(booting):
    compute, image = booting
    mapping = [{"source_type": "image", "destination_type": "local", "boot_index": 0,
                "uuid": image, "delete_on_termination": True}]
    for body in (boot_body(image, "n1"), boot_body(image, "n2", networks="auto"),
                 boot_body(image, "n3", block_device_mapping_v2=mapping)):
        resp = nova(compute, "POST", "/servers", json=body)
        assert resp.status_code == 202, resp.text
    old = {"server": {"name": "n4", "imageRef": image, "flavorRef": "1", "networks": []}}
    assert nova(compute, "POST", "/servers", None, json=old).status_code == 202

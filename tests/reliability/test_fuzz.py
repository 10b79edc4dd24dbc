"""Property-based fuzzing of both APIs from their OpenAPI documents (issue 5 item 9).

schemathesis turns each documented operation into a hypothesis strategy of requests, positive
(valid per the document) and negative (violating it: wrong types, missing fields, bad headers).
Every response must be below 500, have a documented content type, and validate against the
documented schema for its status - which for errors is the documented error shape (Glance's
WebOb JSON body / Nova's fault body). Bounded and deterministic: hypothesis runs derandomized
(its seed comes from the test), path ids are swapped for real ones by a seeded RNG, and
examples per operation are capped (CHUTE_FUZZ_EXAMPLES).
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from typing import Any, Callable

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
)

from chute.openapi import COMPUTE, IMAGES

EXAMPLES = int(os.environ.get("CHUTE_FUZZ_EXAMPLES", "4"))
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


@schemathesis.serializer("application/openstack-images-v2.1-json-patch")
def _json_patch(ctx: Any, value: Any) -> bytes:
    return json.dumps(value).encode()


def fuzz(document: dict, base_url: str, real_ids: dict[str, list[str]], seed: int,
         accept_json: float) -> Counter:
    """Run every operation's strategy; raise on the first failed check. -> request counts."""
    schema = schemathesis.openapi.from_dict(document)
    session = requests.Session()
    rng = random.Random(seed)
    counts: Counter = Counter()
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            run = _runner(operation, mode, base_url, session, rng, real_ids, accept_json,
                          counts)
            try:
                run()
            except Unsatisfiable:  # nothing to break: an operation without inputs
                assert mode is GenerationMode.NEGATIVE, operation.label
        assert counts[operation.label] > 0, f"{operation.label} was never called"
    return counts


def _runner(operation: Any, mode: GenerationMode, base_url: str, session: requests.Session,
            rng: random.Random, real_ids: dict[str, list[str]], accept_json: float,
            counts: Counter) -> Callable[[], None]:
    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
              phases=[Phase.explicit, Phase.generate], print_blob=True,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        for name, ids in real_ids.items():
            if case.path_parameters and name in case.path_parameters and rng.random() < 0.6:
                case.path_parameters[name] = rng.choice(ids)
        asked_json = rng.random() < accept_json
        headers = {"Accept": "application/json"} if asked_json else {}
        response = case.call(base_url=base_url, session=session, headers=headers, timeout=30)
        counts["requests"] += 1
        counts[operation.label] += 1
        counts[f"{response.status_code // 100}xx"] += 1
        if response.status_code >= 400:
            _error_shape(response, asked_json)
        case.validate_response(response, checks=CHECKS)

    return run


def _error_shape(response: Any, asked_json: bool) -> None:
    """The JSON error shapes are schema-checked; the HTML/plain ones are Glance's too."""
    content_type = (response.headers.get("content-type") or [""])[0]
    if content_type.startswith("application/json"):
        return
    text = response.text
    status_line = f"{response.status_code} "
    assert not asked_json, (response.status_code, content_type, text[:200])
    if content_type.startswith("text/html"):
        assert text.startswith(f"<html><head><title>{status_line}"), text[:200]
    else:
        assert content_type.startswith("text/plain") and text.startswith(status_line), text[:200]


def seed_images(url: str) -> dict[str, list[str]]:
    """A queued and an active image with a tag, so fuzzed ids also reach real records."""
    ids = []
    for data in (None, b"\0" * 4096):
        image = requests.post(url + "/v2/images", timeout=10, json={
            "name": "fuzz", "disk_format": "raw", "container_format": "bare",
            "tags": ["fuzz"]}).json()
        if data:
            resp = requests.put(f"{url}/v2/images/{image['id']}/file", data=data, timeout=10,
                                headers={"Content-Type": "application/octet-stream"})
            assert resp.status_code == 204, resp.text
        ids.append(image["id"])
    return {"image_id": ids, "tag": ["fuzz"]}


def test_fuzz_images_api(start_api, capsys):
    api = start_api()
    counts = fuzz(IMAGES, api.url, seed_images(api.url), seed=9, accept_json=0.75)
    assert counts["5xx"] == 0
    with capsys.disabled():
        print(f"\n[fuzz] images API: {counts['requests']} requests "
              f"({', '.join(f'{k} {v}' for k, v in sorted(counts.items()) if 'xx' in k)}), "
              "0 server errors, every body in the documented shape")


def test_fuzz_compute_api(shared_api, start_compute, capsys):
    compute = start_compute(shared_api)
    ids = seed_images(shared_api.url)
    server = requests.post(compute.url + "/v2.1/servers", timeout=10, json={"server": {
        "name": "fuzz", "imageRef": ids["image_id"][1], "flavorRef": "1"}}).json()["server"]
    real = {"server_id": [server["id"]], "flavor_id": ["1", "2", "5"]}
    counts = fuzz(COMPUTE, compute.url, real, seed=11, accept_json=1.0)
    assert counts["5xx"] == 0
    with capsys.disabled():
        print(f"\n[fuzz] compute API: {counts['requests']} requests "
              f"({', '.join(f'{k} {v}' for k, v in sorted(counts.items()) if 'xx' in k)}), "
              "0 server errors, every body in the documented shape")

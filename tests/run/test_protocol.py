"""The hello and the run request cross the pipe as JSON objects; to_dict/from_dict keep their wire form."""

from __future__ import annotations

import json

from xentcheck.run.protocol import Hello, RunRequest
from xentcheck.run.worker import hello


def test_an_ok_hello_carries_every_description_field_and_round_trips():
    backend, greeting = hello("numpy")
    assert backend is not None and greeting.status == "ok" and greeting.name == "numpy"
    wire = json.loads(json.dumps(greeting.to_dict()))
    assert list(wire)[:3] == ["op", "status", "name"] and "reason" not in wire
    assert {v["impl"] for v in wire["variants"]} == {v.impl for v in backend.variants()}
    assert Hello.from_dict(wire) == greeting and Hello.from_dict(wire).to_dict() == wire
    # a plugin's version() that gives None still sends the key (the record's backend_version is then null)
    assert Hello("ok", name="p").to_dict()["version"] is None


def test_a_broken_hello_gives_only_what_it_knows():
    assert Hello("broken", reason="SyntaxError").to_dict() == {"op": "hello", "status": "broken", "reason": "SyntaxError"}
    assert Hello("missing", name="jax", reason="no jax").to_dict() == \
        {"op": "hello", "status": "missing", "name": "jax", "reason": "no jax"}
    _, greeting = hello("no-such-backend")
    assert greeting.status == "broken" and greeting.name is None and greeting.reason


def test_a_hello_names_its_node_only_when_it_has_one():
    node = {"host": "gpu-7", "ip": "10.0.0.7", "node_id": "ab12", "environment": {"python": "3.11.9"}}
    assert "node" not in Hello("ok", name="numpy").to_dict()  # a local worker's: as before --executor ray
    wire = json.loads(json.dumps(Hello("ok", name="numpy", node=node).to_dict()))
    assert wire["node"] == node and Hello.from_dict(wire).node == node
    assert Hello("missing", name="jax", reason="no jax", node=node).to_dict()["node"] == node


def test_a_run_request_round_trips_through_its_wire_form():
    request = RunRequest(case_id="float32-n4-k3", seed=7, device="cpu", out="/tmp/x/0-1",
                         variants=[("torch.cross_entropy", "eager")], properties=True, rtol=1e-5, atol=1e-7, scaled=True)
    wire = json.loads(json.dumps(request.to_dict()))
    assert wire == {"op": "run", "case_id": "float32-n4-k3", "seed": 7, "device": "cpu", "out": "/tmp/x/0-1",
                    "variants": [["torch.cross_entropy", "eager"]], "properties": True,
                    "tolerance": {"rtol": 1e-5, "atol": 1e-7, "scaled": True}}
    assert RunRequest.from_dict(wire) == request

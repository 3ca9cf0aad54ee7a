"""Every message between the parent and a worker crosses the pipe as a JSON object; each record's
to_dict/from_dict keep its wire form, and `message` rebuilds whichever came."""

from __future__ import annotations

import json

import pytest

from xentcheck.backends.registry import create
from xentcheck.core.records import VariantOutput
from xentcheck.run.protocol import Hello, Quit, RunReply, RunRequest, TimedVariant, TimeRequest, TimingReply, message
from xentcheck.run.worker import hello, run_case, time_case


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


def test_a_run_reply_round_trips_and_keeps_each_outputs_wire_form(tmp_path):
    backend = create("numpy")
    backend.load()
    case_id = "scale1e+0_float32_4x3_index_mean"
    reply = run_case(backend, RunRequest(case_id, 0, "cpu", str(tmp_path / "r")))
    assert isinstance(reply, RunReply) and reply.case_id == case_id and reply.results
    wire = json.loads(json.dumps(reply.to_dict()))
    assert wire["op"] == "result" and wire["results"] == [r.to_dict() for r in reply.results]
    back = message(wire)
    assert isinstance(back, RunReply) and back.to_dict() == wire
    assert [r.status for r in back.results] == ["ok"] * len(reply.results)
    assert {r.variant["impl"] for r in back.results} == {r.variant["impl"] for r in reply.results}


def test_a_time_request_and_its_reply_round_trip():
    request = TimeRequest("scale1e+0_float32_4x3_index_mean", 3, "cpu", [("numpy", "eager")], min_block=0.001,
                          blocks=2)
    wire = json.loads(json.dumps(request.to_dict()))
    assert wire == {"op": "time", "case_id": "scale1e+0_float32_4x3_index_mean", "seed": 3, "device": "cpu",
                    "variants": [["numpy", "eager"]], "min_block": 0.001, "blocks": 2}
    assert message(wire) == request and request.measure_options() == {"min_block": 0.001, "blocks": 2}
    skip = TimingReply("c", [TimedVariant("skipped", reason="no GPU")])
    assert skip.to_dict() == {"op": "timing", "case_id": "c", "results": [{"status": "skipped", "reason": "no GPU"}]}
    assert message(json.loads(json.dumps(skip.to_dict()))) == skip


def test_a_worker_times_a_case_into_a_typed_reply():
    backend = create("numpy")
    backend.load()
    impl = next(v for v in backend.variants() if v.default)
    request = TimeRequest("scale1e+0_float32_4x3_index_mean", 0, "cpu", [(impl.impl, impl.mode)], min_block=0.001,
                          blocks=2, warmup=0.001)
    reply = time_case(backend, request)
    assert isinstance(reply, TimingReply) and len(reply.results) == 1
    timed = reply.results[0]
    assert timed.status == "ok" and timed.variant["impl"] == impl.impl and timed.peak_rss_bytes
    assert timed.phases and all(p["blocks"] == 2 and p["median"] > 0 for p in timed.phases.values())
    assert TimingReply.from_dict(json.loads(json.dumps(reply.to_dict()))) == reply


def test_quit_and_an_unknown_message():
    assert Quit().to_dict() == {"op": "quit"} and message({"op": "quit"}) == Quit()
    with pytest.raises(ValueError, match="unknown message op 'sing'"):
        message({"op": "sing"})
    err = RunReply(None, [VariantOutput("error", error="worker: KeyError: 'case_id'")])
    assert RunReply.from_dict(err.to_dict()).results[0].error == "worker: KeyError: 'case_id'"

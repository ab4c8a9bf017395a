"""What Flower ships with every simulated message: the ClientApp, pickled per dispatch.

Flower's Ray backend pickles the ClientApp (and so Confide's node resolver) into every message
it sends to a worker. The resolver carries a reference to the job in Ray's object store, so the
payload does not grow with the federation (it used to carry the whole job: O(nodes) bytes per
message, O(nodes^2) per round). A worker fetches the job once per run.
"""

from __future__ import annotations

import pytest
from flwr.app import Context, RecordDict
from ray import cloudpickle

from confide.clients.client_app import make_client_app
from confide.config import compose_config, to_container
from confide.job import parse_job
from confide.simulations import job_handle
from confide.simulations import simulate as sim

_POLICY = "pkg://confide.simulations/policies/synthetic_customers.yaml"


class FakeRef:
    """Stands in for a Ray ObjectRef (Ray is not started in this test)."""

    store: dict[str, object] = {}  # noqa: RUF012 - the fake object store
    gets = 0

    def __init__(self, key: str) -> None:
        self.key = key

    def hex(self) -> str:
        return self.key


@pytest.fixture()
def fake_ray(monkeypatch):
    import ray

    FakeRef.store, FakeRef.gets = {}, 0

    def put(value):
        ref = FakeRef(f"ref{len(FakeRef.store)}")
        FakeRef.store[ref.key] = value
        return ref

    def get(ref):
        FakeRef.gets += 1
        return FakeRef.store[ref.key]

    monkeypatch.setattr(ray, "put", put)
    monkeypatch.setattr(ray, "get", get)
    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    monkeypatch.setattr(job_handle, "_WORKER_JOBS", {})
    return FakeRef


def _job(n_nodes: int):
    cfg = to_container(compose_config([], []))
    cfg["federation"] = {
        "name": f"n{n_nodes}",
        "nodes": [
            {"name": f"node_{i:03d}", "profile": "retailer", "rows": 500, "policy": _POLICY}
            for i in range(n_nodes)
        ],
    }
    return parse_job(cfg)


def _payload(resolver) -> int:
    return len(cloudpickle.dumps(make_client_app(resolver)))


def _context(partition: int) -> Context:
    return Context(1, 1, {"partition-id": partition}, RecordDict(), {})


def test_the_per_message_payload_does_not_grow_with_the_federation(fake_ray):
    small, large = _job(2), _job(200)
    assert (
        abs(_payload(sim._simulation_resolver(large)) - _payload(sim._simulation_resolver(small)))
        < 64
    )


def test_control_a_resolver_holding_the_job_grows_with_the_federation():
    def holding(job):
        def resolve(context):
            return job.nodes[int(context.node_config["partition-id"])]

        return resolve

    assert _payload(holding(_job(200))) - _payload(holding(_job(2))) > 10_000


def test_without_a_running_engine_nothing_is_put_until_the_first_dispatch(fake_ray, monkeypatch):
    import ray

    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # Ray down: never start it here
    resolver = sim._simulation_resolver(_job(3))
    assert resolver(_context(1)).node.name == "node_001"
    assert fake_ray.store == {}
    cloudpickle.dumps(resolver)  # the first dispatch (the engine runs by then)
    assert len(fake_ray.store) == 1


def test_a_worker_fetches_the_job_once_per_run_and_resolves_each_node(fake_ray):
    resolver = sim._simulation_resolver(_job(5))
    for _ in range(3):  # three dispatches to the same worker
        resolve = cloudpickle.loads(cloudpickle.dumps(resolver))
        names = [resolve(_context(i)).node.name for i in (0, 3, 4)]
        assert names == ["node_000", "node_003", "node_004"]
    assert len(fake_ray.store) == 1  # put once
    assert fake_ray.gets == 1  # fetched once per worker process
    resolve_next = cloudpickle.loads(cloudpickle.dumps(sim._simulation_resolver(_job(3))))
    assert resolve_next(_context(2)).node.name == "node_002"  # the next run: its own job
    assert fake_ray.gets == 2
    assert list(job_handle._WORKER_JOBS) == ["ref1"]  # the old run's job is dropped

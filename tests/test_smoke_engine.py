"""The engine runs a small flow end to end and persists it."""
from engine.runtime import FlowEngine


async def test_run_is_persisted(flow_engine: FlowEngine) -> None:
    flow = flow_engine.compile({
        "id": "smoke", "name": "smoke", "trigger": {"type": "manual"},
        "steps": [{"id": "greet", "type": "set", "value": "hello {{ trigger.name }}"}],
    })
    run = await flow_engine.run(flow, {"name": "Li"})
    flow_engine.flush()
    stored = flow_engine.runs.get(run.id)
    assert stored.status == "succeeded"
    assert stored.output == "hello Li"
    assert [s.step_id for s in stored.steps] == ["greet"]

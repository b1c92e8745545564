"""(c) of bench/steps.py: the same journey as a BPMN process run by SpiffWorkflow (the
``bench`` extra), its workflow serialized to JSON and stored in SQLite per step."""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path
from typing import Any

from bench.steps_common import (
    ANSWERS,
    INPUTS,
    INSERT_EVENT,
    WARMUP,
    Result,
    Timer,
    connect,
    event_row,
    mean_kb,
)

# The same journey in BPMN 2.0: user tasks for the 3 interactive steps, script tasks for the two
# stubbed actions and the two `say` nodes on the way, exclusive gateways for the `decide` and for
# the options of the `choose`. (The `to_logistics` handoff, reached only when the tracking action
# fails, is left out: it would only make the process, and its serialization, bigger.)
BPMN = """\
<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    id="bench_definitions" targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:process id="bench_delivery" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="ask_order"/>
    <bpmn:userTask id="ask_order" name="Which order is it about?"/>
    <bpmn:sequenceFlow id="f1" sourceRef="ask_order" targetRef="fetch"/>
    <bpmn:scriptTask id="fetch" name="orders.get_tracking (stub)">
      <bpmn:script>tracking = {"order_id": order_id, "status": "in_transit", "days_late": 7, "carrier": "Colissimo", "shipping_cost": 4.9, "amount": 59.0}</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="f2" sourceRef="fetch" targetRef="route"/>
    <bpmn:exclusiveGateway id="route" default="f_reassure"/>
    <bpmn:sequenceFlow id="f_offer" sourceRef="route" targetRef="offer">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">tracking["days_late"] &gt; 5</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f_reassure" sourceRef="route" targetRef="reassure"/>
    <bpmn:userTask id="offer" name="What would you prefer?"/>
    <bpmn:sequenceFlow id="f3" sourceRef="offer" targetRef="options"/>
    <bpmn:exclusiveGateway id="options" default="f_nothing"/>
    <bpmn:sequenceFlow id="f_refund" sourceRef="options" targetRef="refund">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">compensation == "refund"</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f_nothing" sourceRef="options" targetRef="ask_comment"/>
    <bpmn:scriptTask id="refund" name="payments.refund (stub)">
      <bpmn:script>refunded = {"refund_id": "R-0001", "amount": tracking["shipping_cost"]}</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="f4" sourceRef="refund" targetRef="ask_comment"/>
    <bpmn:scriptTask id="reassure" name="say">
      <bpmn:script>messages = ["Your parcel is on its way with " + tracking["carrier"] + "."]</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="f5" sourceRef="reassure" targetRef="ask_comment"/>
    <bpmn:userTask id="ask_comment" name="Anything you want to add?"/>
    <bpmn:sequenceFlow id="f6" sourceRef="ask_comment" targetRef="thanks"/>
    <bpmn:scriptTask id="thanks" name="say">
      <bpmn:script>messages = ["Thank you, we have noted it."]</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="f7" sourceRef="thanks" targetRef="done"/>
    <bpmn:endEvent id="done"/>
  </bpmn:process>
</bpmn:definitions>
"""


FIELDS = {"ask_order": "order_id", "offer": "compensation", "ask_comment": "comment"}


class SpiffSessions:
    """Sessions of the BPMN process, each workflow serialized to JSON in SQLite per step."""

    def __init__(self, out: Path) -> None:
        from SpiffWorkflow.bpmn.parser import BpmnParser
        from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer

        parser = BpmnParser()
        parser.add_bpmn_str(BPMN.encode())  # lxml refuses a str with an encoding declaration
        self.spec = parser.get_spec("bench_delivery")  # parsed once, as a server would
        self.serializer = BpmnWorkflowSerializer()
        self.conn = connect(out / "spiff.db")
        self.sizes: dict[str, list[int]] = {"start": [], "end": []}

    def start(self, sid: str) -> None:
        from SpiffWorkflow.bpmn import BpmnWorkflow

        workflow = BpmnWorkflow(self.spec)
        workflow.data.update(INPUTS)
        workflow.do_engine_steps()
        state = str(self.serializer.serialize_json(workflow))
        conn = self.conn
        conn.execute("BEGIN")
        conn.execute("INSERT INTO sessions (id, seq, state) VALUES (?, 1, ?)", (sid, state))
        conn.execute(INSERT_EVENT, event_row(sid, 1, "start", {"inputs": INPUTS}))
        conn.execute("COMMIT")
        self.sizes["start"].append(len(state))

    def answer(self, sid: str, node: str, value: Any) -> bool:
        from SpiffWorkflow.util.task import TaskState

        conn = self.conn
        seq, stored = conn.execute(
            "SELECT seq, state FROM sessions WHERE id = ?", (sid,)
        ).fetchone()
        workflow = self.serializer.deserialize_json(stored)
        task = workflow.get_next_task(state=TaskState.READY, manual=True)
        if task is None or task.task_spec.name != node:
            sys.exit(f"(c) spiff: expected the user task {node!r}, found {task}")
        task.data[FIELDS[node]] = value
        task.run()
        workflow.do_engine_steps()
        state = str(self.serializer.serialize_json(workflow))
        conn.execute("BEGIN")
        done = conn.execute(
            "UPDATE sessions SET seq = ?, state = ? WHERE id = ? AND seq = ?",
            (seq + 1, state, sid, seq),
        )
        if done.rowcount != 1:
            sys.exit(f"(c) spiff: session {sid} moved on")
        conn.execute(
            INSERT_EVENT, event_row(sid, seq + 1, "answer", {"node": node, "value": value})
        )
        conn.execute("COMMIT")
        if workflow.completed:
            self.sizes["end"].append(len(state))
        return bool(workflow.completed)

    def run(self, sid: str, timer: Timer) -> None:
        timer.time(partial(self.start, sid))
        completed = [timer.time(partial(self.answer, sid, node, value)) for node, value in ANSWERS]
        if completed != [False, False, True]:
            sys.exit(f"(c) spiff: the workflow did not run as expected: {completed}")


def bench_spiff(out: Path, n: int) -> Result | str:
    """The journey as a BPMN process, its workflow stored as JSON in SQLite per step."""
    try:
        import SpiffWorkflow  # noqa: F401
    except ImportError:
        return "SpiffWorkflow is not installed: pip install -e '.[bench]' to compare with it"
    from importlib.metadata import version

    spiff = SpiffSessions(out)
    for i in range(WARMUP):
        spiff.run(f"w{i}", Timer(Result("warm-up")))
    for measured in spiff.sizes.values():
        measured.clear()
    result = Result(f"(c) SpiffWorkflow {version('SpiffWorkflow')}, SQLite WAL")
    with Timer(result) as timer:
        for i in range(n):
            spiff.run(f"s{i}", timer)
    spiff.conn.close()
    sizes = spiff.sizes
    result.notes.append(
        f"stored per session: workflow JSON {mean_kb(sizes['start']):.1f} kB after the start, "
        f"{mean_kb(sizes['end']):.1f} kB at the end (serialized, parsed again every step)"
    )
    return result

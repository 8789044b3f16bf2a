import { describe, expect, it } from "vitest";
import { FlowDef, TRIGGER_ID, renameStep, testDefinition, toFlow, toGraph, uniqueStepId } from "./flowgraph";

const flow: FlowDef = {
  id: "lead",
  trigger: { type: "webhook", path: "lead" },
  steps: [
    { id: "map", type: "set", value: { a: 1 } },
    { id: "route", type: "choice", choices: [{ when: "steps.map.output.a == `1`", next: "p1" }], default: "p3" },
    { id: "p1", type: "set", value: "P1", next: "post" },
    { id: "p3", type: "set", value: "P3", next: "post" },
    { id: "post", type: "action", action: "http.request", args: {}, catch: [{ errors: ["*"], next: "park", as: "e" }] },
    { id: "park", type: "fail", error: "X" },
  ],
  layout: { nodes: { map: { x: 5, y: 6 } } },
};

describe("toGraph", () => {
  it("draws fall-through, choice rules, default, next and catch edges", () => {
    const { nodes, edges } = toGraph(flow);
    expect(nodes.map((n) => n.id)).toEqual([TRIGGER_ID, "map", "route", "p1", "p3", "post", "park"]);
    expect(nodes[1].position).toEqual({ x: 5, y: 6 });
    const pairs = edges.map((e) => `${e.source}/${e.sourceHandle}>${e.target}`);
    expect(pairs).toEqual([
      `${TRIGGER_ID}/next>map`, "map/next>route", "route/choice-0>p1", "route/default>p3",
      "p1/next>post", "p3/next>post", "post/next>park", "post/catch>park",
    ]);
  });

  it("does not fall through past a step marked end", () => {
    const { edges } = toGraph({ id: "f", trigger: { type: "manual" }, steps: [{ id: "a", type: "set", value: 1, end: true }, { id: "b", type: "set", value: 2 }] });
    expect(edges.filter((e) => e.source === "a")).toEqual([]);
  });
});

describe("toFlow", () => {
  it("round-trips the logic with explicit routing and keeps positions in layout only", () => {
    const { nodes, edges } = toGraph(flow);
    const moved = nodes.map((n) => (n.id === "p1" ? { ...n, position: { x: 300.4, y: 10.6 } } : n));
    const back = toFlow(flow, moved, edges);
    expect(back.steps.find((s) => s.id === "map")).toEqual({ id: "map", type: "set", value: { a: 1 }, next: "route" });
    expect(back.steps.find((s) => s.id === "route")).toMatchObject({ choices: [{ next: "p1" }], default: "p3" });
    expect(back.steps.find((s) => s.id === "post")).toMatchObject({ next: "park", catch: [{ errors: ["*"], next: "park", as: "e" }] });
    expect(back.steps.find((s) => s.id === "park")).toEqual({ id: "park", type: "fail", error: "X" });
    expect(back.layout!.nodes!.p1).toEqual({ x: 300, y: 11 });
    expect(back.start).toBeUndefined();
    // moving a node changes the layout and nothing else
    const again = toFlow(flow, nodes, edges);
    expect({ ...again, layout: null }).toEqual({ ...back, layout: null });
  });

  it("ends a step without an outgoing edge, drops a catch without a target and sets start when it moved", () => {
    const { nodes, edges } = toGraph(flow);
    const cut = edges.filter((e) => !(e.source === "post") && e.source !== TRIGGER_ID);
    cut.push({ id: "t", source: TRIGGER_ID, target: "route", sourceHandle: "next" });
    const back = toFlow(flow, nodes, cut);
    const post = back.steps.find((s) => s.id === "post")!;
    expect(post.end).toBe(true);
    expect(post.next).toBeUndefined();
    expect(post.catch).toBeUndefined();
    expect(back.start).toBe("route");
  });

  it("leaves a choice rule without a target unrouted (the API then points at it)", () => {
    const { nodes, edges } = toGraph(flow);
    const back = toFlow(flow, nodes, edges.filter((e) => e.sourceHandle !== "choice-0"));
    expect(back.steps.find((s) => s.id === "route")!.choices).toEqual([{ when: "steps.map.output.a == `1`" }]);
  });
});

describe("ids", () => {
  it("makes valid unique step ids", () => {
    expect(uniqueStepId("http.request", ["http_request"])).toBe("http_request_2");
    expect(uniqueStepId("9lives", [])).toBe("_9lives");
  });

  it("renames a step with its edges", () => {
    const { nodes, edges } = toGraph(flow);
    const renamed = renameStep(nodes, edges, "post", "crm");
    expect(renamed.nodes.find((n) => n.id === "crm")!.data.step!.id).toBe("crm");
    expect(renamed.edges.filter((e) => e.source === "crm" || e.target === "crm").length).toBe(4);
  });
});

describe("testDefinition", () => {
  it("keeps the tested step and stands in for the others so the rest may be unfinished", () => {
    const unfinished: FlowDef = { ...flow, steps: flow.steps.map((s) => (s.id === "post" ? { ...s, args: { url: "not yet" } } : s)), output: { $expr: "x" } as any };
    const tested = testDefinition(unfinished, "route");
    expect(tested.steps[0]).toEqual(flow.steps[1]);
    expect(tested.steps.slice(1).map((s) => s.type)).toEqual(["set", "set", "set", "set", "set"]);
    expect(tested.steps.find((s) => s.id === "post")).toEqual({ id: "post", type: "set", value: null, next: "park" });
    expect(tested.steps.at(-1)!.end).toBe(true);
    expect(tested.output).toBeUndefined();
    expect(testDefinition(flow, "map").steps[0]).toEqual({ id: "map", type: "set", value: { a: 1 }, next: "route" });
  });
});

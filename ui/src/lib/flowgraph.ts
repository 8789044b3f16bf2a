/**
 * Flow definition <-> canvas graph. The definition's `steps` are the logic; node positions live in
 * `layout.nodes` only (the engine never reads them), so moving a node never changes the logic.
 */

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type Step = { id: string; type: string; [key: string]: any };
export type FlowDef = {
  id: string;
  name?: string;
  trigger: { type: string; [key: string]: any };
  steps: Step[];
  start?: string;
  layout?: { nodes?: Record<string, { x: number; y: number }> };
  [key: string]: any;
};

export const TRIGGER_ID = "__trigger__";
/** Outgoing handles: `next`, `default`, `catch`, or `choice-<n>` for a choice step's n-th rule. */
export type Handle = "next" | "default" | "catch" | `choice-${number}`;

export type GraphNode = {
  id: string;
  type: "trigger" | "step";
  position: { x: number; y: number };
  data: { step?: Step; trigger?: FlowDef["trigger"] };
};
export type GraphEdge = { id: string; source: string; target: string; sourceHandle: Handle; label?: string };

const TERMINAL = new Set(["fail", "succeed"]);
const ROW = 130;

/** Whether a step of this type has a plain `next` (choice routes by rule, fail/succeed end). */
export function hasNext(type: string): boolean {
  return type !== "choice" && !TERMINAL.has(type);
}

export function edgeId(source: string, handle: string, target: string): string {
  return `${source}:${handle}->${target}`;
}

function edge(source: string, handle: Handle, target: string, label?: string): GraphEdge {
  return { id: edgeId(source, handle, target), source, target, sourceHandle: handle, ...(label ? { label } : {}) };
}

/** The canvas graph of a definition; steps without a stored position are stacked top to bottom. */
export function toGraph(flow: FlowDef): { nodes: GraphNode[]; edges: GraphEdge[] } {
  const positions = flow.layout?.nodes ?? {};
  const at = (id: string, row: number) => positions[id] ?? { x: 80, y: row * ROW };
  const nodes: GraphNode[] = [{ id: TRIGGER_ID, type: "trigger", position: at(TRIGGER_ID, 0), data: { trigger: flow.trigger } }];
  const edges: GraphEdge[] = [];
  const steps = flow.steps ?? [];
  const start = flow.start ?? steps[0]?.id;
  if (start) edges.push(edge(TRIGGER_ID, "next", start));
  steps.forEach((step, i) => {
    nodes.push({ id: step.id, type: "step", position: at(step.id, i + 1), data: { step } });
    if (step.type === "choice") {
      (step.choices ?? []).forEach((rule: { next?: string }, n: number) => {
        if (rule.next) edges.push(edge(step.id, `choice-${n}`, rule.next));
      });
      if (step.default) edges.push(edge(step.id, "default", step.default));
    } else if (hasNext(step.type)) {
      const fallThrough = !step.end && i + 1 < steps.length ? steps[i + 1].id : undefined;
      const next = step.next ?? fallThrough;
      if (next) edges.push(edge(step.id, "next", next));
    }
    const caught = (step.catch ?? []).find((c: { next?: string }) => c.next);
    if (caught) edges.push(edge(step.id, "catch", caught.next));
  });
  return { nodes, edges };
}

/**
 * The definition a canvas describes: each step's routing is written explicitly from its edges
 * (`next`, or `end: true` when nothing follows), `start` from the trigger's edge, positions into layout.
 */
export function toFlow(base: FlowDef, nodes: GraphNode[], edges: GraphEdge[]): FlowDef {
  const out = (source: string, handle: string) => edges.find((e) => e.source === source && e.sourceHandle === handle)?.target;
  const layout: Record<string, { x: number; y: number }> = {};
  const steps: Step[] = [];
  for (const node of nodes) {
    layout[node.id] = { x: Math.round(node.position.x), y: Math.round(node.position.y) };
    if (node.type !== "step" || !node.data.step) continue;
    const step: Step = { ...node.data.step };
    if (step.type === "choice") {
      step.choices = (step.choices ?? []).map((rule: Record<string, any>, n: number) => withOptional(rule, "next", out(step.id, `choice-${n}`)));
      Object.assign(step, withOptional(step, "default", out(step.id, "default")));
      if (!step.default) delete step.default;
    } else if (hasNext(step.type)) {
      const next = out(step.id, "next");
      delete step.next;
      delete step.end;
      if (next) step.next = next;
      else step.end = true;
    }
    const caughtBy = out(step.id, "catch");
    if (step.catch?.length || caughtBy) {
      const rules = step.catch?.length ? [...step.catch] : [{ errors: ["*"] }];
      rules[0] = withOptional(rules[0], "next", caughtBy);
      if (caughtBy) step.catch = rules;
      else delete step.catch;
    }
    steps.push(step);
  }
  const flow: FlowDef = { ...base, trigger: nodes.find((n) => n.type === "trigger")?.data.trigger ?? base.trigger, steps };
  const start = out(TRIGGER_ID, "next");
  delete flow.start;
  if (start && start !== steps[0]?.id) flow.start = start;
  flow.layout = { ...(base.layout ?? {}), nodes: layout };
  return flow;
}

function withOptional<T extends Record<string, any>>(obj: T, key: string, value: string | undefined): T {
  const copy: Record<string, any> = { ...obj };
  if (value) copy[key] = value;
  else delete copy[key];
  return copy as T;
}

/** A step id not used yet, derived from `base` (`http_request`, `http_request_2`, ...). */
export function uniqueStepId(base: string, taken: Iterable<string>): string {
  const used = new Set(taken);
  const clean = base.replace(/[^A-Za-z0-9_]/g, "_").replace(/^([^A-Za-z_])/, "_$1") || "step";
  if (!used.has(clean)) return clean;
  for (let n = 2; ; n++) if (!used.has(`${clean}_${n}`)) return `${clean}_${n}`;
}

/** Rename a step on the canvas: its node, the edges that touch it and its layout entry. */
export function renameStep(nodes: GraphNode[], edges: GraphEdge[], from: string, to: string): { nodes: GraphNode[]; edges: GraphEdge[] } {
  const renamed = nodes.map((n) => (n.id === from ? { ...n, id: to, data: { ...n.data, step: { ...n.data.step!, id: to } } } : n));
  const moved = edges.map((e) => {
    const source = e.source === from ? to : e.source;
    const target = e.target === from ? to : e.target;
    return { ...e, source, target, id: edgeId(source, e.sourceHandle, target) };
  });
  return { nodes: renamed, edges: moved };
}

/** A fresh step of a palette entry: an action (`http.request`) or a control-flow type. */
export function newStep(kind: string, id: string): Step {
  switch (kind) {
    case "choice":
      return { id, type: "choice", choices: [{ when: "" }] };
    case "map":
      return { id, type: "map", items: "trigger.body.items", steps: [{ id: `${id}_item`, type: "set", value: { $expr: "item" } }] };
    case "parallel":
      return { id, type: "parallel", branches: [{ id: "a", steps: [{ id: `${id}_a`, type: "set", value: null }] }, { id: "b", steps: [{ id: `${id}_b`, type: "set", value: null }] }] };
    case "set":
      return { id, type: "set", value: {} };
    case "wait":
      return { id, type: "wait", seconds: 1 };
    case "fail":
      return { id, type: "fail", error: "Failed", message: "" };
    case "succeed":
      return { id, type: "succeed" };
    default:
      return { id, type: "action", action: kind, args: {} };
  }
}

/**
 * The definition to test one step with while the rest of the flow may still be unfinished: the step
 * itself, and every other step replaced by a placeholder `set` (so references to their ids and
 * outputs still validate), all chained so that nothing is unreachable.
 */
export function testDefinition(flow: FlowDef, stepId: string): FlowDef {
  const step = flow.steps.find((s) => s.id === stepId);
  if (!step) throw new Error(`no step '${stepId}'`);
  const others: Step[] = flow.steps.filter((s) => s.id !== stepId).map((s) => ({ id: s.id, type: "set", value: null }));
  others.forEach((s, i) => (i + 1 < others.length ? (s.next = others[i + 1].id) : (s.end = true)));
  const tested: Step = { ...step };
  if (hasNext(tested.type)) {
    delete tested.next;
    delete tested.end;
    if (others.length) tested.next = others[0].id;
    else tested.end = true;
  }
  const { start: _start, layout: _layout, output: _output, ...rest } = flow;
  return { ...rest, steps: [tested, ...others] };
}

/**
 * Validation issues from the API (each with a JSON pointer into the definition) placed where the
 * person can fix them: on a step node, and on a field of that step's form.
 */
import type { FlowDef } from "./flowgraph";
import { TRIGGER_ID } from "./flowgraph";

export type Issue = { pointer?: string; message: string; [key: string]: any };
export type Placed = { node: string | null; field: string | null; message: string };

function unescape(token: string): string {
  return token.replace(/~1/g, "/").replace(/~0/g, "~");
}

/** The node (a top-level step id, the trigger, or null for the flow) and args field an issue points at. */
export function placeIssue(flow: FlowDef, issue: Issue): Placed {
  const parts = (issue.pointer ?? "").split("/").slice(1).map(unescape);
  if (parts[0] === "trigger") return { node: TRIGGER_ID, field: parts[1] ?? null, message: issue.message };
  if (parts[0] === "steps" && parts[1] !== undefined) {
    const step = flow.steps[Number(parts[1])];
    if (!step) return { node: null, field: null, message: issue.message };
    const rest = parts.slice(2);
    const field = rest[0] === "args" ? rest[1] ?? null : rest[0] ?? null;
    return { node: step.id, field, message: issue.message };
  }
  return { node: null, field: null, message: issue.message };
}

/** Issues grouped by node id (flow-level ones under ""). */
export function issuesByNode(flow: FlowDef, issues: Issue[]): Record<string, Placed[]> {
  const grouped: Record<string, Placed[]> = {};
  for (const issue of issues) {
    const placed = placeIssue(flow, issue);
    (grouped[placed.node ?? ""] ??= []).push(placed);
  }
  return grouped;
}

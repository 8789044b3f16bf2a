/** Where a flow's webhook listens and how to call it. */
import type { FlowDef } from "./flowgraph";

type Trigger = FlowDef["trigger"];

/** The /hooks/ path a trigger listens on: its own path, or `<connector>/<path>` for a connector callback. */
export function hookPath(trigger: Trigger, flowId: string): string | null {
  if (trigger.type === "webhook") return trigger.path ?? "";
  if (/^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$/.test(trigger.type)) return `${trigger.type.split(".")[0]}/${trigger.path || flowId}`;
  return null;
}

/** A curl command that posts the sample body to the webhook. */
export function curlFor(url: string, trigger: Trigger): string {
  const body = JSON.stringify(trigger.sample?.body ?? {});
  const method = trigger.method ?? "POST";
  return `curl -X ${method} '${url}' -H 'Content-Type: application/json' -d '${body.replace(/'/g, "'\\''")}'`;
}

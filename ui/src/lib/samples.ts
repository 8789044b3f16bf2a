/** The sample data expressions are completed, previewed and tested against. */
import type { FlowDef } from "./flowgraph";

export type RunDetail = { id: string; trigger?: unknown; steps?: { step_id: string; path: string; status: string; output?: unknown }[] };

/** Expression context: trigger sample (else the last run's trigger), vars, and earlier outputs of the last run and step tests. */
export function sampleContext(flow: FlowDef, lastRun: RunDetail | null, tested: Record<string, unknown>): Record<string, unknown> {
  const steps: Record<string, { output: unknown }> = {};
  for (const s of lastRun?.steps ?? []) if (s.path === s.step_id && s.status === "succeeded") steps[s.step_id] = { output: s.output };
  for (const [id, output] of Object.entries(tested)) steps[id] = { output };
  return { trigger: flow.trigger.sample ?? lastRun?.trigger ?? {}, vars: flow.vars ?? {}, steps };
}

/** Runs as the pages show them: node statuses on the graph, and per-flow last run and failure share. */
import { TRIGGER_ID } from "./flowgraph";

export type StepRecord = { seq: number; step_id: string; path: string; status: string; input?: unknown; output?: unknown; error?: { type: string; message: string } | null; attempts?: unknown[]; duration_ms?: number };
export type Run = { id: string; flow_id: string; flow_version: number; status: string; started_at: number; duration_ms?: number | null; trigger?: unknown; output?: unknown; error?: { type: string; message: string; step?: string } | null; resumed_from?: string | null; steps: StepRecord[] };
export type RunRow = { id: string; flow_id: string; status: string; started_at: number };
export type Stats = { last?: RunRow; total: number; failed: number };

/** The top-level step a record belongs to (`m[2].x` -> `m`). */
export function topLevel(path: string): string {
  return path.split(/[.[]/)[0];
}

/** Status per canvas node: the latest record of each top-level step; a failure inside a map or branch marks it. */
export function nodeStatuses(run: Run): Record<string, string> {
  const statuses: Record<string, string> = { [TRIGGER_ID]: "succeeded" };
  for (const record of [...run.steps].sort((a, b) => a.seq - b.seq)) {
    const id = topLevel(record.path);
    if (record.path === record.step_id) statuses[id] = record.status;
    else if (record.status === "failed" && !statuses[id]) statuses[id] = "running";
  }
  const failedAt = run.error?.step ? topLevel(run.error.step) : null;
  if (failedAt) statuses[failedAt] = "failed";
  return statuses;
}

/** Last run and failure share per flow, from the newest runs. */
export function runStats(runs: RunRow[]): Record<string, Stats> {
  const stats: Record<string, Stats> = {};
  for (const run of runs) {
    const s = (stats[run.flow_id] ??= { total: 0, failed: 0 });
    if (!s.last) s.last = run;
    if (run.status === "running") continue;
    s.total += 1;
    if (run.status === "failed") s.failed += 1;
  }
  return stats;
}

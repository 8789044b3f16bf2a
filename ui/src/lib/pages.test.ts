import { describe, expect, it } from "vitest";
import { sideBySide } from "./diff";
import { curlFor, hookPath } from "./hooks";
import { Run, nodeStatuses, runStats } from "./runs";
import { sampleContext } from "./samples";

describe("run view", () => {
  const run: Run = {
    id: "r2", flow_id: "f", flow_version: 1, status: "failed", started_at: 1, steps: [
      { seq: 1, step_id: "prepare", path: "prepare", status: "succeeded" },
      { seq: 2, step_id: "call", path: "each[1].call", status: "failed" },
      { seq: 3, step_id: "each", path: "each", status: "failed" },
      { seq: 4, step_id: "prepare", path: "prepare", status: "skipped" },
    ], error: { type: "Transient", message: "x", step: "each[1].call" },
  };
  it("colours top-level steps by their latest record and the failed step's top level", () => {
    expect(nodeStatuses(run)).toEqual({ __trigger__: "succeeded", prepare: "skipped", each: "failed" });
  });

  it("summarises the last run and the failure share per flow, ignoring running runs in the share", () => {
    const stats = runStats([
      { id: "3", flow_id: "a", status: "running", started_at: 3 },
      { id: "2", flow_id: "a", status: "failed", started_at: 2 },
      { id: "1", flow_id: "a", status: "succeeded", started_at: 1 },
      { id: "0", flow_id: "b", status: "succeeded", started_at: 1 },
    ]);
    expect(stats.a).toEqual({ last: { id: "3", flow_id: "a", status: "running", started_at: 3 }, total: 2, failed: 1 });
    expect(stats.b.failed).toBe(0);
  });
});

describe("diff", () => {
  it("aligns removed and added lines side by side", () => {
    const text = "--- f@1\n+++ f@2\n@@ -1,3 +1,3 @@\n {\n-  \"name\": \"a\"\n+  \"name\": \"b\"\n+  \"x\": 1\n }\n";
    expect(sideBySide(text)).toEqual([
      { left: "@@ -1,3 +1,3 @@", right: "@@ -1,3 +1,3 @@", kind: "hunk" },
      { left: "{", right: "{", kind: "same" },
      { left: '  "name": "a"', right: '  "name": "b"', kind: "change" },
      { left: "", right: '  "x": 1', kind: "change" },
      { left: "}", right: "}", kind: "same" },
    ]);
  });
});

describe("webhooks", () => {
  it("knows where each trigger listens", () => {
    expect(hookPath({ type: "webhook", path: "forms/lead" }, "f")).toBe("forms/lead");
    expect(hookPath({ type: "douyin.new_lead", path: "leads" }, "f")).toBe("douyin/leads");
    expect(hookPath({ type: "douyin.new_lead" }, "my-flow")).toBe("douyin/my-flow");
    expect(hookPath({ type: "schedule" }, "f")).toBeNull();
  });

  it("quotes the sample body for the shell", () => {
    expect(curlFor("http://h/hooks/x", { type: "webhook", sample: { body: { name: "O'Brien" } } }))
      .toBe(`curl -X POST 'http://h/hooks/x' -H 'Content-Type: application/json' -d '{"name":"O'\\''Brien"}'`);
  });
});

describe("sample context", () => {
  it("uses the trigger sample, vars, the last run's top-level outputs and step tests (tests win)", () => {
    const flow = { id: "f", trigger: { type: "webhook", sample: { body: { a: 1 } } }, steps: [], vars: { v: 2 } };
    const last = { id: "r", trigger: { body: { a: 9 } }, steps: [
      { step_id: "x", path: "x", status: "succeeded", output: 1 },
      { step_id: "y", path: "m[0].y", status: "succeeded", output: 2 },
      { step_id: "z", path: "z", status: "failed", output: null },
    ] };
    expect(sampleContext(flow, last, { x: 5 })).toEqual({ trigger: { body: { a: 1 } }, vars: { v: 2 }, steps: { x: { output: 5 } } });
    expect(sampleContext({ ...flow, trigger: { type: "manual" } }, last, {}).trigger).toEqual({ body: { a: 9 } });
  });
});

import { describe, expect, it } from "vitest";
import { applyCompletion, completions, contextPaths, syntaxError, templateErrors, tokenAt } from "./paths";

const context = {
  trigger: { body: { lead_id: "L1", "full name": "Zhang", items: [{ sku: "A" }] } },
  steps: { map_to_crm: { output: { tag: "vip" } } },
};

describe("context paths", () => {
  it("lists nested paths, quoting odd keys and indexing lists", () => {
    const paths = contextPaths(context);
    expect(paths).toContain("trigger.body.lead_id");
    expect(paths).toContain('trigger.body."full name"');
    expect(paths).toContain("trigger.body.items[0].sku");
    expect(paths).toContain("steps.map_to_crm.output.tag");
  });

  it("completes the token at the caret, shallow paths first", () => {
    const paths = contextPaths(context);
    expect(completions(paths, "trigger.b")).toEqual(["trigger.body", "trigger.body.lead_id", 'trigger.body."full name"', "trigger.body.items", "trigger.body.items[0]", "trigger.body.items[0].sku"].sort((a, b) => a.split(".").length - b.split(".").length || a.localeCompare(b)));
    expect(completions(paths, "steps.map")[0]).toBe("steps.map_to_crm");
    expect(completions(paths, "nothing")).toEqual([]);
  });

  it("replaces only the token being typed", () => {
    const text = "upper(trigger.bo) == 'X'";
    const caret = text.indexOf(")");
    expect(tokenAt(text, caret)).toEqual({ start: 6, token: "trigger.bo" });
    expect(applyCompletion(text, caret, "trigger.body.lead_id")).toEqual({ text: "upper(trigger.body.lead_id) == 'X'", caret: 26 });
  });
});

describe("syntax", () => {
  it("flags invalid JMESPath and accepts valid", () => {
    expect(syntaxError("trigger.body.amount > `3000` && 'vip' || 'std'")).toBeNull();
    expect(syntaxError("trigger.[")).not.toBeNull();
    expect(syntaxError("  ")).toBe("empty expression");
  });

  it("checks each {{ }} of a template", () => {
    expect(templateErrors("Hi {{ trigger.name }}")).toEqual([]);
    expect(templateErrors("Hi {{ trigger. }} and {{ a }}")).toHaveLength(1);
  });
});

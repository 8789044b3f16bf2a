import { describe, expect, it } from "vitest";
import { JsonFieldError, fromFormState, switchMode, toFormState, unwrapNullable } from "./argsform";
import { placeIssue } from "./issues";

const schema = {
  properties: {
    method: { enum: ["GET", "POST"], default: "GET", title: "Method", type: "string" },
    url: { title: "Url", type: "string", pattern: "^https?://" },
    json: { default: null, title: "Json" },
    body: { anyOf: [{ type: "string" }, { type: "null" }], default: null, title: "Body" },
    api_key: { type: "string", "x-secret": true, title: "Key", "x-title-zh": "密钥" },
    owner_id: { type: "string", "x-options": { action: "list_owners" } },
  },
  required: ["url"],
};

describe("form state", () => {
  it("chooses literal, expression or JSON editing per field and carries hints", () => {
    const state = toFormState(schema, { url: { $expr: "vars.crm_url" }, json: { a: 1 }, method: "POST" }, "zh-CN");
    expect(state.modes).toEqual({ method: "literal", url: "expr", json: "json", body: "literal", api_key: "literal", owner_id: "literal" });
    expect(state.formData).toEqual({ url: "vars.crm_url", json: '{\n  "a": 1\n}', method: "POST" });
    expect(state.schema.properties.body).toEqual({ type: "string", title: "Body" });
    expect(state.schema.properties.api_key.title).toBe("密钥");
    expect(state.uiSchema.api_key["ui:widget"]).toBe("password");
    expect(state.uiSchema.owner_id["ui:widget"]).toBe("options");
    expect(state.uiSchema.url["ui:widget"]).toBe("expression");
    expect(state.schema.required).toEqual(["url"]);
  });

  it("turns the form back into args, leaving empty fields to their defaults", () => {
    const state = toFormState(schema, { url: { $expr: "vars.crm_url" }, json: { a: 1 } });
    const args = fromFormState({ ...state.formData, body: "", method: "POST" }, state.modes);
    expect(args).toEqual({ url: { $expr: "vars.crm_url" }, json: { a: 1 }, method: "POST" });
  });

  it("names the field whose JSON does not parse", () => {
    const state = toFormState(schema, {});
    expect(() => fromFormState({ json: "{oops" }, state.modes)).toThrow(JsonFieldError);
  });

  it("switches a field between literal and expression", () => {
    expect(switchMode({ method: "POST" }, "method", "expr")).toEqual({ method: { $expr: "'POST'" } });
    expect(switchMode({ n: 3 }, "n", "expr")).toEqual({ n: { $expr: "`3`" } });
    expect(switchMode({ url: { $expr: "x" } }, "url", "literal")).toEqual({});
  });

  it("unwraps only nullable single types", () => {
    expect(unwrapNullable({ anyOf: [{ type: "string" }, { type: "integer" }] }).anyOf).toHaveLength(2);
  });
});

describe("issue placement", () => {
  const flow = { id: "f", trigger: { type: "webhook" }, steps: [{ id: "a", type: "set" }, { id: "post", type: "action" }] };
  it("maps pointers to the node and field", () => {
    expect(placeIssue(flow, { pointer: "/steps/1/args/url", message: "bad" })).toEqual({ node: "post", field: "url", message: "bad" });
    expect(placeIssue(flow, { pointer: "/steps/0/value", message: "x" })).toEqual({ node: "a", field: "value", message: "x" });
    expect(placeIssue(flow, { pointer: "/trigger/path", message: "x" }).node).toBe("__trigger__");
    expect(placeIssue(flow, { pointer: "/output", message: "x" }).node).toBeNull();
  });
});

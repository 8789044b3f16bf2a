/**
 * Action args <-> the generated form. A top-level field is either a literal (edited by the widget
 * its JSON Schema asks for) or an expression (`{"$expr": ...}`, edited as JMESPath). Fields whose
 * schema has no single type (any JSON) are edited as JSON text. The schema is reshaped for the
 * form library only: `anyOf [X, null]` becomes X, `x-*` hints become uiSchema options.
 */

export type Schema = { [key: string]: any };
export type Mode = "literal" | "expr" | "json";
export type FormState = { schema: Schema; uiSchema: Schema; formData: Record<string, any>; modes: Record<string, Mode> };

/** `anyOf: [X, {type: null}]` -> X (an optional field, not a type picker). */
export function unwrapNullable(prop: Schema): Schema {
  const options: Schema[] | undefined = prop.anyOf ?? prop.oneOf;
  if (!options) return prop;
  const real = options.filter((o) => o.type !== "null");
  if (real.length !== 1) return prop;
  const { anyOf: _a, oneOf: _o, ...rest } = prop;
  return { ...real[0], ...rest };
}

/** Whether the form library can edit this property with its own widgets. */
export function isStructured(prop: Schema): boolean {
  const p = unwrapNullable(prop);
  if (p.anyOf || p.oneOf || p.allOf || p.$ref) return false;
  if (typeof p.type !== "string") return false;
  if (p.type === "array") return isStructured(p.items ?? {}) && unwrapNullable(p.items).type !== "object";
  // free-form maps (headers, query) read better as JSON than as the form library's add-a-key widget
  if (p.type === "object") return !!p.properties && Object.values(p.properties as Record<string, Schema>).every(isStructured);
  return true;
}

export function isExpr(value: unknown): value is { $expr: string } {
  return !!value && typeof value === "object" && !Array.isArray(value) && typeof (value as any).$expr === "string" && Object.keys(value as object).length === 1;
}

function titled(prop: Schema, name: string, lang: string): Schema {
  const title = (lang.startsWith("zh") && prop["x-title-zh"]) || prop.title || name;
  const description = (lang.startsWith("zh") && prop["x-description-zh"]) || prop.description;
  return { title, ...(description ? { description } : {}) };
}

function uiHints(prop: Schema): Schema {
  const ui: Schema = {};
  if (prop["x-secret"]) ui["ui:widget"] = "password";
  if (prop["x-multiline"]) ui["ui:widget"] = "textarea";
  if (prop["x-options"]) ui["ui:widget"] = "options";
  if (prop["x-placeholder"]) ui["ui:placeholder"] = prop["x-placeholder"];
  return ui;
}

/** The form (schema, uiSchema, data, per-field mode) for an action's input schema and a step's args. */
export function toFormState(input: Schema | null | undefined, args: Record<string, any> | undefined, lang = "zh-CN", forced: Record<string, Mode> = {}): FormState {
  const props: Record<string, Schema> = input?.properties ?? {};
  const values = args ?? {};
  const properties: Schema = {};
  const uiSchema: Schema = { "ui:order": [...Object.keys(props), "*"] };
  const formData: Record<string, any> = {};
  const modes: Record<string, Mode> = {};
  for (const [name, raw] of Object.entries(props)) {
    const prop = unwrapNullable(raw);
    const value = values[name];
    const mode: Mode = forced[name] ?? (isExpr(value) ? "expr" : isStructured(prop) ? "literal" : "json");
    modes[name] = mode;
    const meta = titled(prop, name, lang);
    const options = { "ui:options": { flField: name, flMode: mode } };
    if (mode === "expr") {
      properties[name] = { type: "string", ...meta };
      uiSchema[name] = { "ui:widget": "expression", ...options };
      formData[name] = isExpr(value) ? value.$expr : value === undefined ? "" : typeof value === "string" ? value : JSON.stringify(value);
    } else if (mode === "json") {
      properties[name] = { type: "string", ...meta };
      uiSchema[name] = { "ui:widget": "json", ...options };
      formData[name] = value === undefined ? "" : JSON.stringify(value, null, 2);
    } else {
      const { title: _t, description: _d, default: _default, ...shape } = prop;
      properties[name] = { ...shape, ...meta, ...(_default !== undefined && _default !== null ? { default: _default } : {}) };
      uiSchema[name] = { ...uiHints(prop), ...options };
      if (value !== undefined) formData[name] = value;
    }
  }
  const schema: Schema = { type: "object", properties, required: (input?.required ?? []).filter((r: string) => r in props) };
  return { schema, uiSchema, formData, modes };
}

/** Raised for a JSON field whose text does not parse. */
export class JsonFieldError extends Error {
  constructor(readonly field: string, message: string) {
    super(message);
  }
}

/** The step args a form describes (empty fields are left out so the action's defaults apply). */
export function fromFormState(formData: Record<string, any>, modes: Record<string, Mode>): Record<string, any> {
  const args: Record<string, any> = {};
  for (const [name, value] of Object.entries(formData ?? {})) {
    const mode = modes[name] ?? "literal";
    if (value === undefined || value === "" || value === null) continue;
    if (mode === "expr") args[name] = { $expr: String(value) };
    else if (mode === "json") {
      try {
        args[name] = JSON.parse(String(value));
      } catch (err) {
        throw new JsonFieldError(name, `${name}: not valid JSON (${(err as Error).message})`);
      }
    } else args[name] = value;
  }
  return args;
}

/** A field switched between literal and expression: the value carried over as far as it makes sense. */
export function switchMode(args: Record<string, any>, field: string, to: "expr" | "literal"): Record<string, any> {
  const next = { ...args };
  const value = args[field];
  if (to === "expr") next[field] = { $expr: value === undefined ? "" : isExpr(value) ? value.$expr : typeof value === "string" ? `'${value.replace(/'/g, "\\'")}'` : `\`${JSON.stringify(value)}\`` };
  else if (isExpr(value)) delete next[field];
  return next;
}

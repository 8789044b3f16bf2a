/** Connections: list, create from the connector's connection schema, test, change secrets (write-only). */
import { useCallback, useEffect, useState } from "react";
import Form from "@rjsf/core";
import validator from "@rjsf/validator-ajv8";
import type { FieldTemplateProps } from "@rjsf/utils";
import { api, call } from "../api/client";
import { explain } from "../errors";
import { pick, useI18n } from "../i18n";
import { toFormState } from "../lib/argsform";
import type { Manifest } from "../editor/context";
import { Dialog, Notice, when } from "../ui";

type Row = { name: string; connector: string; fields: string[]; updated_at?: number; values?: Record<string, unknown> };

type FieldsProps = {
  manifest?: Manifest;
  onSubmit: (fields: Record<string, unknown>) => void;
  submitLabel: string;
  /** Changing an existing connection: nothing is required, empty fields keep their stored value. */
  partial?: boolean;
  initial?: Record<string, unknown>;
};

/** Drop empty values: on a change they mean "keep what is stored" (secrets are never shown, so they start empty). */
function filled(fields: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined && v !== null && v !== ""));
}

function FieldsForm({ manifest, onSubmit, submitLabel, partial, initial }: FieldsProps) {
  const { t, lang } = useI18n();
  const [text, setText] = useState("{}");
  const [error, setError] = useState("");
  const schema = manifest?.connection?.schema;
  if (schema) {
    const state = toFormState(schema, initial ?? {}, lang);
    const formSchema = partial ? { ...state.schema, required: [] } : state.schema;
    return (
      <Form schema={formSchema} uiSchema={{ ...state.uiSchema, "ui:submitButtonOptions": { submitText: submitLabel } }} validator={validator}
            formData={state.formData} onSubmit={(e) => onSubmit(filled(e.formData ?? {}))} showErrorList={false}
            templates={{ FieldTemplate: ConnectionField }} />
    );
  }
  // no declared schema (e.g. http: bearer, basic or api_key): fields as JSON
  return (
    <form className="stack" onSubmit={(e) => { e.preventDefault(); try { onSubmit(JSON.parse(text)); } catch (err) { setError(`${t("errInvalidJson")}: ${(err as Error).message}`); } }}>
      <label>{t("fields")} ({(manifest?.connection?.kinds ?? []).join(" / ")})
        <textarea className="mono" rows={5} value={text} onChange={(e) => setText(e.target.value)} placeholder='{"auth": "bearer", "token": "..."}' name="connection-fields" />
      </label>
      {error && <div className="expr-error">{error}</div>}
      <button type="submit" className="primary">{submitLabel}</button>
    </form>
  );
}

/** A connection form field with a stable hook for tests and people: `data-field`, secrets marked. */
function ConnectionField(props: FieldTemplateProps) {
  const { t } = useI18n();
  const { id, label, children, description, rawErrors, hidden, required, displayLabel, uiSchema } = props;
  if (hidden) return <div className="hidden">{children}</div>;
  const name = (uiSchema?.["ui:options"] as { flField?: string } | undefined)?.flField;
  const secret = uiSchema?.["ui:widget"] === "password";
  return (
    <div className="field" data-field={name}>
      {displayLabel && <label htmlFor={id}>{label}{required ? " *" : ""}{secret && <span className="muted"> 🔒 {t("secretHidden")}</span>}</label>}
      {children}
      {displayLabel && description}
      {!!rawErrors?.length && <div className="expr-error">{rawErrors.join("; ")}</div>}
    </div>
  );
}

export default function Connections() {
  const { t, lang } = useI18n();
  const [rows, setRows] = useState<Row[]>([]);
  const [connectors, setConnectors] = useState<Record<string, Manifest>>({});
  const [error, setError] = useState("");
  const [info, setInfo] = useState("");
  const [creating, setCreating] = useState(false);
  const [rotating, setRotating] = useState<Row | null>(null);
  const [name, setName] = useState("");
  const [connector, setConnector] = useState("");

  const load = useCallback(async () => {
    try {
      setRows(await call<Row[]>(api.GET("/api/connections")));
      const catalog = await call<Manifest[]>(api.GET("/api/connectors"));
      setConnectors(Object.fromEntries(catalog.filter((c) => c.connection).map((c) => [c.name, c])));
    } catch (err) {
      setError(explain(err, t));
    }
  }, [t]);
  useEffect(() => { void load(); }, [load]);

  const act = async (work: () => Promise<unknown>, done: string) => {
    setError("");
    try {
      await work();
      setInfo(done);
      setCreating(false);
      setRotating(null);
      await load();
    } catch (err) {
      setError(explain(err, t));
    }
  };
  const openRotate = async (row: Row) => {
    try {
      setRotating(await call<Row>(api.GET("/api/connections/{name}", { params: { path: { name: row.name } } })));
    } catch (err) {
      setError(explain(err, t));
    }
  };
  const test = async (row: Row) => {
    setError("");
    setInfo("");
    try {
      const result = await call<{ ok: boolean; message: string }>(api.POST("/api/connections/{name}/test", { params: { path: { name: row.name } } }));
      if (result.ok) setInfo(`${row.name}: ${t("testOk")} ${result.message ?? ""}`);
      else setError(`${row.name}: ${result.message}`);
    } catch (err) {
      setError(explain(err, t));
    }
  };
  return (
    <section className="page">
      <div className="toolbar">
        <h2>{t("connections")}</h2>
        <span className="spacer" />
        <button className="primary" onClick={() => setCreating(true)}>{t("newConnection")}</button>
      </div>
      <Notice kind="error" onClose={() => setError("")}>{error}</Notice>
      <Notice kind="ok" onClose={() => setInfo("")}>{info}</Notice>
      <table className="grid">
        <thead><tr><th>{t("name")}</th><th>{t("connector")}</th><th>{t("fields")}</th><th /></tr></thead>
        <tbody>
          {rows.map((r) => (
            <tr key={r.name}>
              <td>{r.name}</td>
              <td>{pick(connectors[r.connector]?.title, lang) || r.connector}</td>
              <td className="muted">{r.fields.join(", ")} · {when(r.updated_at)}</td>
              <td><button onClick={() => test(r)}>{t("test")}</button> <button onClick={() => openRotate(r)}>{t("rotate")}</button></td>
            </tr>
          ))}
        </tbody>
      </table>
      {creating && (
        <Dialog title={t("newConnection")} onClose={() => setCreating(false)}>
          <label>{t("name")}<input value={name} onChange={(e) => setName(e.target.value)} name="connection-name" /></label>
          <label>{t("connector")}
            <select value={connector} onChange={(e) => setConnector(e.target.value)} name="connection-connector">
              <option value="">{t("choose")}</option>
              {Object.values(connectors).map((c) => <option key={c.name} value={c.name}>{pick(c.title, lang) || c.name}</option>)}
            </select>
          </label>
          {connector && <FieldsForm key={connector} manifest={connectors[connector]} submitLabel={t("create")}
                                    onSubmit={(fields) => act(() => call(api.POST("/api/connections", { body: { name, connector, fields } as any })), `${name} ✓`)} />}
        </Dialog>
      )}
      {rotating && (
        <Dialog title={`${t("rotate")}: ${rotating.name}`} onClose={() => setRotating(null)}>
          <FieldsForm manifest={connectors[rotating.connector]} submitLabel={t("save")} partial initial={rotating.values}
                      onSubmit={(fields) => act(() => call(api.PATCH("/api/connections/{name}", { params: { path: { name: rotating.name } }, body: { fields } as any })), `${rotating.name} ✓`)} />
        </Dialog>
      )}
    </section>
  );
}

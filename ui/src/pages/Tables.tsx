/** Data tables: browse rows page by page, add, edit and delete rows with a form generated from the columns. */
import { useCallback, useEffect, useState } from "react";
import Form from "@rjsf/core";
import validator from "@rjsf/validator-ajv8";
import { api, call } from "../api/client";
import { explain } from "../errors";
import { pick, useI18n } from "../i18n";
import { Dialog, Notice } from "../ui";

type Table = { name: string; title: Record<string, string>; key: string | null; columns: Record<string, Record<string, any>>; required: string[]; rows?: number | null };
type Row = Record<string, any> & { _id: number };
const PAGE = 50;

/** The JSON Schema of one row of a table (for the row form). */
export function rowSchema(table: Table): Record<string, any> {
  return { type: "object", properties: table.columns, required: table.required };
}

export default function Tables() {
  const { t, lang } = useI18n();
  const [tables, setTables] = useState<Table[]>([]);
  const [current, setCurrent] = useState<Table | null>(null);
  const [rows, setRows] = useState<Row[]>([]);
  const [total, setTotal] = useState(0);
  const [offset, setOffset] = useState(0);
  const [editing, setEditing] = useState<Row | "new" | null>(null);
  const [error, setError] = useState("");

  useEffect(() => {
    call<Table[]>(api.GET("/api/tables")).then((found) => { setTables(found); setCurrent((c) => c ?? found[0] ?? null); }, (err) => setError(explain(err, t)));
  }, [t]);
  const load = useCallback(async () => {
    if (!current) return;
    try {
      const page = await call<{ rows: Row[]; total: number }>(api.GET("/api/tables/{name}/rows", { params: { path: { name: current.name }, query: { limit: PAGE, offset } } }));
      setRows(page.rows);
      setTotal(page.total);
    } catch (err) {
      setError(explain(err, t));
    }
  }, [current, offset, t]);
  useEffect(() => { void load(); }, [load]);

  const save = async (values: Record<string, any>) => {
    if (!current) return;
    setError("");
    const path = { name: current.name };
    try {
      if (editing === "new") await call(api.POST("/api/tables/{name}/rows", { params: { path, query: {} }, body: values }));
      else if (editing) {
        // a column emptied in the form is cleared (null), as the API expects
        const cleared = Object.fromEntries(Object.keys(current.columns).map((c) => [c, values[c] ?? null]));
        await call(api.PATCH("/api/tables/{name}/rows/{row_id}", { params: { path: { ...path, row_id: editing._id } }, body: cleared }));
      }
      setEditing(null);
      await load();
    } catch (err) {
      setError(explain(err, t));
    }
  };
  const remove = async (row: Row) => {
    try {
      await call(api.DELETE("/api/tables/{name}/rows/{row_id}", { params: { path: { name: current!.name, row_id: row._id } } }));
      await load();
    } catch (err) {
      setError(explain(err, t));
    }
  };
  const columns = current ? Object.keys(current.columns) : [];
  return (
    <section className="page">
      <div className="toolbar">
        <h2>{t("tables")}</h2>
        <select aria-label={t("tables")} value={current?.name ?? ""} onChange={(e) => { setCurrent(tables.find((x) => x.name === e.target.value) ?? null); setOffset(0); }}>
          {tables.map((x) => <option key={x.name} value={x.name}>{pick(x.title, lang) || x.name} ({x.name})</option>)}
        </select>
        <span className="muted">{total} {t("rows")}</span>
        <span className="spacer" />
        <button disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - PAGE))}>‹</button>
        <button disabled={offset + PAGE >= total} onClick={() => setOffset(offset + PAGE)}>›</button>
        {current && <button className="primary" onClick={() => setEditing("new")}>{t("addRow")}</button>}
      </div>
      <Notice kind="error" onClose={() => setError("")}>{error}</Notice>
      {tables.length === 0 ? <p>{t("noTables")}</p> : (
        <table className="grid" data-testid="rows">
          <thead><tr><th>#</th>{columns.map((c) => <th key={c}>{c}{c === current?.key ? " 🔑" : ""}</th>)}<th /></tr></thead>
          <tbody>
            {rows.map((r) => (
              <tr key={r._id}>
                <td className="muted">{r._id}</td>
                {columns.map((c) => <td key={c}>{typeof r[c] === "object" && r[c] !== null ? JSON.stringify(r[c]) : String(r[c] ?? "")}</td>)}
                <td><button onClick={() => setEditing(r)}>{t("editor")}</button> <button className="danger" onClick={() => remove(r)}>{t("delete")}</button></td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {editing && current && (
        <Dialog title={editing === "new" ? t("addRow") : `#${editing._id}`} onClose={() => setEditing(null)}>
          <Form schema={rowSchema(current) as any} validator={validator} showErrorList={false}
                formData={editing === "new" ? {} : Object.fromEntries(columns.filter((c) => editing[c] != null).map((c) => [c, editing[c]]))}
                uiSchema={{ "ui:submitButtonOptions": { submitText: t("save") } }} onSubmit={(e) => save(e.formData ?? {})} />
        </Dialog>
      )}
    </section>
  );
}

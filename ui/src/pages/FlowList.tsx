/** Flows: status, last run, error rate; search, create, import and export. */
import { ChangeEvent, FormEvent, useCallback, useEffect, useState } from "react";
import { api, call, rawFetch } from "../api/client";
import { explain } from "../errors";
import { useI18n } from "../i18n";
import { navigate } from "../router";
import { RunRow, Stats, runStats } from "../lib/runs";
import { Dialog, Notice, StatusBadge, when } from "../ui";

type FlowRow = { id: string; name?: string; version: number; active: boolean };

export default function FlowList() {
  const { t } = useI18n();
  const [flows, setFlows] = useState<FlowRow[] | null>(null);
  const [stats, setStats] = useState<Record<string, Stats>>({});
  const [q, setQ] = useState("");
  const [error, setError] = useState("");
  const [info, setInfo] = useState("");
  const [creating, setCreating] = useState(false);

  const load = useCallback(async () => {
    try {
      const [found, runs] = await Promise.all([
        call<FlowRow[]>(api.GET("/api/flows", { params: { query: q ? { q } : {} } })),
        call<RunRow[]>(api.GET("/api/runs", { params: { query: { limit: 500 } } })),
      ]);
      setFlows(found);
      setStats(runStats(runs));
    } catch (err) {
      setError(explain(err, t));
    }
  }, [q, t]);
  useEffect(() => { void load(); }, [load]);

  const importFile = async (e: ChangeEvent<HTMLInputElement>) => {
    const file = e.target.files?.[0];
    e.target.value = "";
    if (!file) return;
    setError("");
    let body;
    try {
      body = JSON.parse(await file.text());
    } catch (err) {
      setError(`${file.name}: ${t("errInvalidJson")} (${(err as Error).message})`);
      return;
    }
    try {
      const saved = await call<{ id: string; version: number }>(api.POST("/api/flows/import", { body }));
      setInfo(`${t("importDone")}: ${saved.id} v${saved.version}`);
      await load();
    } catch (err) {
      setError(explain(err, t));
    }
  };

  const exportFlow = async (id: string) => {
    const response = await rawFetch(`/api/flows/${encodeURIComponent(id)}/export`);
    if (!response.ok) return setError(`${t("export")}: HTTP ${response.status}`);
    const url = URL.createObjectURL(await response.blob());
    const a = document.createElement("a");
    a.href = url;
    a.download = `${id}.json`;
    a.click();
    URL.revokeObjectURL(url);
  };

  return (
    <section className="page">
      <div className="toolbar">
        <h2>{t("flows")}</h2>
        <input type="search" placeholder={t("search")} aria-label={t("search")} value={q} onChange={(e) => setQ(e.target.value)} />
        <span className="spacer" />
        <label className="button">{t("import")}<input type="file" accept="application/json,.json" hidden onChange={importFile} data-testid="import-file" /></label>
        <button className="primary" onClick={() => setCreating(true)}>{t("newFlow")}</button>
      </div>
      <Notice kind="error" onClose={() => setError("")}>{error}</Notice>
      <Notice kind="ok" onClose={() => setInfo("")}>{info}</Notice>
      {flows === null ? <p>{t("loading")}</p> : flows.length === 0 ? <p>{t("noFlows")}</p> : (
        <table className="grid">
          <thead><tr><th>{t("name")}</th><th>{t("status")}</th><th>{t("version")}</th><th>{t("lastRun")}</th><th>{t("errorRate")}</th><th /></tr></thead>
          <tbody>
            {flows.map((f) => {
              const s = stats[f.id];
              return (
                <tr key={f.id} data-flow={f.id}>
                  <td><a href={`/flows/${f.id}`} onClick={(e) => { e.preventDefault(); navigate(`/flows/${f.id}`); }}>{f.name || f.id}</a><div className="muted">{f.id}</div></td>
                  <td><span className={f.active ? "badge status-succeeded" : "badge"}>{f.active ? t("active") : t("inactive")}</span></td>
                  <td>v{f.version}</td>
                  <td>{s?.last ? <><StatusBadge status={s.last.status} /> <a href={`/runs/${s.last.id}`} onClick={(e) => { e.preventDefault(); navigate(`/runs/${s.last!.id}`); }}>{when(s.last.started_at)}</a></> : "—"}</td>
                  <td>{s?.total ? `${Math.round((100 * s.failed) / s.total)}%` : "—"}</td>
                  <td><button onClick={() => exportFlow(f.id)}>{t("export")}</button></td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      {creating && <CreateFlow onClose={() => setCreating(false)} />}
    </section>
  );
}

type Template = { id: string; name: string; description: string; trigger: string | null; connectors: string[] };

function CreateFlow({ onClose }: { onClose: () => void }) {
  const { t } = useI18n();
  const [id, setId] = useState("");
  const [name, setName] = useState("");
  const [template, setTemplate] = useState("");
  const [templates, setTemplates] = useState<Template[]>([]);
  useEffect(() => {
    call<Template[]>(api.GET("/api/templates")).then(setTemplates).catch(() => setTemplates([]));
  }, []);
  const valid = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(id);
  const chosen = templates.find((x) => x.id === template);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (!valid) return;
    // the flow is created by its first save in the editor (a flow needs at least one step)
    const from = template ? `&template=${encodeURIComponent(template)}` : "";
    navigate(`/flows/${encodeURIComponent(id)}?new=1&name=${encodeURIComponent(name || chosen?.name || id)}${from}`);
  };
  return (
    <Dialog title={t("newFlow")} onClose={onClose}>
      <form onSubmit={submit} className="stack">
        <label>{t("template")}
          <select name="flow-template" value={template} onChange={(e) => setTemplate(e.target.value)}>
            <option value="">{t("blankFlow")}</option>
            {templates.map((x) => <option key={x.id} value={x.id}>{x.name} ({x.id})</option>)}
          </select>
        </label>
        {chosen && <small className="muted">{chosen.trigger} · {chosen.connectors.join(", ") || "core"}</small>}
        <label>{t("id")}<input name="flow-id" value={id} onChange={(e) => setId(e.target.value)} autoFocus /></label>
        <small className={id && !valid ? "error-text" : "muted"}>{t("flowIdHelp")}</small>
        <label>{t("name")}<input name="flow-name" value={name} onChange={(e) => setName(e.target.value)} /></label>
        <div className="row"><button type="button" onClick={onClose}>{t("cancel")}</button><button type="submit" className="primary" disabled={!valid}>{t("create")}</button></div>
      </form>
    </Dialog>
  );
}

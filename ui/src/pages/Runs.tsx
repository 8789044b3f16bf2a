/** Runs with filters (flow, status) and a bulk retry of a flow's failed runs. */
import { useCallback, useEffect, useState } from "react";
import { api, call } from "../api/client";
import { explain } from "../errors";
import { useI18n } from "../i18n";
import { navigate, useLocation } from "../router";
import { Notice, StatusBadge, when } from "../ui";

type RunRow = { id: string; flow_id: string; flow_version: number; status: string; started_at: number; duration_ms?: number | null; error?: { type: string; message: string } | null };
const STATUSES = ["running", "succeeded", "failed", "cancelled"] as const;

export default function Runs() {
  const { t } = useI18n();
  const { query } = useLocation();
  const [flowId, setFlowId] = useState(query.get("flow_id") ?? "");
  const [status, setStatus] = useState(query.get("status") ?? "");
  const [flows, setFlows] = useState<{ id: string }[]>([]);
  const [runs, setRuns] = useState<RunRow[] | null>(null);
  const [error, setError] = useState("");
  const [info, setInfo] = useState("");

  const load = useCallback(async () => {
    try {
      const q: Record<string, string | number> = { limit: 100 };
      if (flowId) q.flow_id = flowId;
      if (status) q.status = status;
      setRuns(await call<RunRow[]>(api.GET("/api/runs", { params: { query: q as any } })));
    } catch (err) {
      setError(explain(err, t));
    }
  }, [flowId, status, t]);
  useEffect(() => { void load(); }, [load]);
  useEffect(() => { call<{ id: string }[]>(api.GET("/api/flows")).then(setFlows, () => undefined); }, []);

  const bulkRetry = async () => {
    setError("");
    try {
      const done = await call<{ run_ids: string[]; skipped: unknown[] }>(api.POST("/api/runs/retry", { body: { flow_id: flowId, status: "failed", from: "failed_step", limit: 100 } as any }));
      setInfo(t("bulkRetried", { n: done.run_ids.length }));
      await load();
    } catch (err) {
      setError(explain(err, t));
    }
  };
  return (
    <section className="page">
      <div className="toolbar">
        <h2>{t("runs")}</h2>
        <select aria-label={t("flow")} value={flowId} onChange={(e) => setFlowId(e.target.value)}>
          <option value="">{t("allFlows")}</option>
          {flows.map((f) => <option key={f.id} value={f.id}>{f.id}</option>)}
        </select>
        <select aria-label={t("status")} value={status} onChange={(e) => setStatus(e.target.value)}>
          <option value="">{t("allStatuses")}</option>
          {STATUSES.map((s) => <option key={s} value={s}>{t(s)}</option>)}
        </select>
        <button onClick={load}>↻</button>
        <span className="spacer" />
        <button onClick={bulkRetry} disabled={!flowId}>{t("bulkRetry")}</button>
      </div>
      <Notice kind="error" onClose={() => setError("")}>{error}</Notice>
      <Notice kind="ok" onClose={() => setInfo("")}>{info}</Notice>
      {runs === null ? <p>{t("loading")}</p> : runs.length === 0 ? <p>{t("noRuns")}</p> : (
        <table className="grid">
          <thead><tr><th>{t("started")}</th><th>{t("flow")}</th><th>{t("status")}</th><th>{t("duration")}</th><th>{t("error")}</th></tr></thead>
          <tbody>
            {runs.map((r) => (
              <tr key={r.id} data-run={r.id} data-flow={r.flow_id} data-status={r.status}>
                <td><a href={`/runs/${r.id}`} onClick={(e) => { e.preventDefault(); navigate(`/runs/${r.id}`); }}>{when(r.started_at)}</a></td>
                <td>{r.flow_id} v{r.flow_version}</td>
                <td><StatusBadge status={r.status} /></td>
                <td>{r.duration_ms != null ? `${Math.round(r.duration_ms)} ms` : "—"}</td>
                <td className="muted">{r.error ? `${r.error.type}: ${r.error.message}` : ""}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

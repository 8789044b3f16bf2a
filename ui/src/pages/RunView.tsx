/** One run on the flow's graph: each step coloured by status, its input/output/attempts/errors, retry. */
import { useCallback, useEffect, useMemo, useState } from "react";
import { Edge, Node, ReactFlowProvider } from "@xyflow/react";
import { api, call } from "../api/client";
import { explain } from "../errors";
import { useI18n } from "../i18n";
import { FlowDef, TRIGGER_ID, toGraph } from "../lib/flowgraph";
import { Run, nodeStatuses, topLevel } from "../lib/runs";
import { navigate } from "../router";
import { JsonBlock, Notice, StatusBadge, when } from "../ui";
import Canvas, { CanvasContext } from "../editor/Canvas";
import { EditorContext, Manifest } from "../editor/context";


function RunInner({ runId }: { runId: string }) {
  const { t } = useI18n();
  const [run, setRun] = useState<Run | null>(null);
  const [flow, setFlow] = useState<FlowDef | null>(null);
  const [connectors, setConnectors] = useState<Record<string, Manifest>>({});
  const [selected, setSelected] = useState<string | null>(null);
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);

  const load = useCallback(async () => {
    try {
      const found = await call<Run>(api.GET("/api/runs/{run_id}", { params: { path: { run_id: runId } } }));
      setRun(found);
      return found;
    } catch (err) {
      setError(explain(err, t));
      return null;
    }
  }, [runId, t]);
  useEffect(() => {
    let stop = false;
    let timer: ReturnType<typeof setTimeout>;
    const tick = async () => {
      const found = await load();
      if (!stop && found?.status === "running") timer = setTimeout(tick, 1000);
    };
    void tick();
    return () => { stop = true; clearTimeout(timer); };
  }, [load]);
  useEffect(() => {
    if (!run || flow) return;
    Promise.all([
      call<{ definition: FlowDef }>(api.GET("/api/flows/{flow_id}", { params: { path: { flow_id: run.flow_id }, query: { version: run.flow_version } } })),
      call<Manifest[]>(api.GET("/api/connectors")),
    ]).then(([found, catalog]) => { setFlow(found.definition); setConnectors(Object.fromEntries(catalog.map((c) => [c.name, c]))); }, (err) => setError(explain(err, t)));
  }, [run, flow, t]);

  const graph = useMemo(() => (flow ? toGraph(flow) : { nodes: [], edges: [] }), [flow]);
  const statuses = useMemo(() => (run ? nodeStatuses(run) : {}), [run]);
  const retry = async (from: "failed_step" | "start") => {
    setBusy(true);
    setError("");
    try {
      const started = await call<{ id: string }>(api.POST("/api/runs/{run_id}/retry", { params: { path: { run_id: runId } }, body: { from } }));
      navigate(`/runs/${started.id}`);
    } catch (err) {
      setError(explain(err, t));
    } finally {
      setBusy(false);
    }
  };

  if (!run) return <section className="page"><Notice kind="error">{error}</Notice>{!error && <p>{t("loading")}</p>}</section>;
  const records = run.steps.filter((s) => topLevel(s.path) === selected);
  return (
    <EditorContext.Provider value={{ context: {}, connectors, connections: [] }}>
      <CanvasContext.Provider value={{ issues: {}, statuses }}>
        <section className="editor">
          <div className="toolbar">
            <h2>{t("runView")}</h2>
            <StatusBadge status={run.status} />
            <a href={`/flows/${run.flow_id}`} onClick={(e) => { e.preventDefault(); navigate(`/flows/${run.flow_id}`); }}>{run.flow_id} v{run.flow_version}</a>
            <span className="muted">{when(run.started_at)} {run.duration_ms != null && `· ${Math.round(run.duration_ms)} ms`}</span>
            {run.resumed_from && <a href={`/runs/${run.resumed_from}`} onClick={(e) => { e.preventDefault(); navigate(`/runs/${run.resumed_from}`); }}>← {run.resumed_from.slice(0, 8)}</a>}
            <span className="spacer" />
            {run.status === "failed" && (
              <>
                <button className="primary" onClick={() => retry("failed_step")} disabled={busy}>{t("retryFromFailed")}</button>
                <button onClick={() => retry("start")} disabled={busy}>{t("retryFromStart")}</button>
              </>
            )}
          </div>
          <Notice kind="error" onClose={() => setError("")}>{error}</Notice>
          {run.error && <Notice kind="error">{run.error.step ? `${run.error.step}: ` : ""}{run.error.type}: {run.error.message}</Notice>}
          <div className="editor-body run-body">
            <Canvas nodes={graph.nodes as Node[]} edges={graph.edges as Edge[]} readOnly onSelect={setSelected} />
            <aside className="panel" data-testid="run-panel">
              {!selected && <p className="muted">{t("selectStep")}</p>}
              {selected === TRIGGER_ID && <><h3>{t("trigger")}</h3><JsonBlock value={run.trigger} /></>}
              {selected && selected !== TRIGGER_ID && records.length === 0 && <p className="muted">{t("skipped")}</p>}
              {records.map((r) => (
                <div key={r.seq} className="record" data-step={r.step_id}>
                  <h3>{r.path} <StatusBadge status={r.status} /></h3>
                  {r.error && <Notice kind="error">{r.error.type}: {r.error.message}</Notice>}
                  <h4>{t("input")}</h4><JsonBlock value={r.input} label={t("input")} />
                  <h4>{t("output")}</h4><JsonBlock value={r.output} label={t("output")} />
                  {!!r.attempts?.length && <><h4>{t("attempts")} ({r.attempts.length})</h4><JsonBlock value={r.attempts} /></>}
                </div>
              ))}
            </aside>
          </div>
        </section>
      </CanvasContext.Provider>
    </EditorContext.Provider>
  );
}

export default function RunView({ runId }: { runId: string }) {
  return (
    <ReactFlowProvider>
      <RunInner key={runId} runId={runId} />
    </ReactFlowProvider>
  );
}

/**
 * The flow editor: palette, canvas and side panel. The canvas is the source of truth while editing;
 * saving turns it back into a definition (logic in `steps`, positions in `layout`) and stores it as a
 * new version, reporting a concurrent save (409) and placing validation issues on nodes and fields.
 */
import { DragEvent, useCallback, useEffect, useMemo, useState } from "react";
import { Connection as RFConnection, Edge, Node, ReactFlowProvider, addEdge, useEdgesState, useNodesState, useReactFlow } from "@xyflow/react";
import { ApiFailure, api, call } from "../api/client";
import { explain } from "../errors";
import { useI18n } from "../i18n";
import { FlowDef, GraphEdge, GraphNode, Handle, Step, TRIGGER_ID, edgeId, newStep, renameStep, testDefinition, toFlow, toGraph, uniqueStepId } from "../lib/flowgraph";
import { Issue, issuesByNode, placeIssue } from "../lib/issues";
import { RunDetail, sampleContext } from "../lib/samples";
import { navigate, setLeaveGuard, useLocation } from "../router";
import { Dialog, Notice } from "../ui";
import Canvas, { CanvasContext } from "./Canvas";
import { Connection, EditorContext, Manifest } from "./context";
import Palette, { DRAG_TYPE } from "./Palette";
import StepPanel, { TestResult } from "./StepPanel";
import TriggerPanel from "./TriggerPanel";
import Versions from "./Versions";

type Loaded = { base: FlowDef; version: number | null; active: boolean };

function EditorInner({ flowId }: { flowId: string }) {
  const { t } = useI18n();
  const { query } = useLocation();
  const flow = useReactFlow();
  const [loaded, setLoaded] = useState<Loaded | null>(null);
  const [nodes, setNodes, onNodesChange] = useNodesState<Node>([]);
  const [edges, setEdges, onEdgesChange] = useEdgesState<Edge>([]);
  const [selected, setSelected] = useState<string | null>(null);
  const [connectors, setConnectors] = useState<Record<string, Manifest>>({});
  const [connections, setConnections] = useState<Connection[]>([]);
  const [lastRun, setLastRun] = useState<RunDetail | null>(null);
  const [tested, setTested] = useState<Record<string, unknown>>({});
  // issues point into the definition that was sent (by step index), so they are placed against that one
  const [issues, setIssues] = useState<{ flow: FlowDef; list: Issue[] } | null>(null);
  const [error, setError] = useState("");
  const [info, setInfo] = useState("");
  const [conflict, setConflict] = useState<number | null>(null);
  const [dirty, setDirty] = useState(false);
  const [saving, setSaving] = useState(false);
  const [showSave, setShowSave] = useState(false);
  const [showVersions, setShowVersions] = useState(false);
  const [busy, setBusy] = useState("");

  const isNew = query.get("new") === "1";
  const load = useCallback(async () => {
    setError("");
    setConflict(null);
    setIssues(null);
    try {
      const [catalog, conns] = await Promise.all([call<Manifest[]>(api.GET("/api/connectors")), call<Connection[]>(api.GET("/api/connections")).catch(() => [])]);
      setConnectors(Object.fromEntries(catalog.map((c) => [c.name, c])));
      setConnections(conns);
      let next: Loaded;
      const template = query.get("template");
      if (isNew && template) {
        // a copy of a shipped flow under the new id; a path of its own so it never collides with the original
        const found = await call<FlowDef>(api.GET("/api/templates/{template_id}", { params: { path: { template_id: template } } }));
        const trigger = "path" in found.trigger ? { ...found.trigger, path: flowId } : found.trigger;
        next = { base: { ...found, id: flowId, name: query.get("name") || found.name, trigger }, version: null, active: false };
      } else if (isNew) {
        next = { base: { id: flowId, name: query.get("name") || flowId, trigger: { type: "webhook", path: flowId, sample: { body: {} } }, steps: [] }, version: null, active: false };
      } else {
        const found = await call<{ version: number; definition: FlowDef }>(api.GET("/api/flows/{flow_id}", { params: { path: { flow_id: flowId } } }));
        const listed = await call<{ id: string; active: boolean }[]>(api.GET("/api/flows", { params: { query: { q: flowId } } }));
        const { version: _v, ...definition } = found.definition;
        next = { base: definition as FlowDef, version: found.version, active: !!listed.find((f) => f.id === flowId)?.active };
        const runs = await call<{ id: string }[]>(api.GET("/api/runs", { params: { query: { flow_id: flowId, limit: 1 } } }));
        setLastRun(runs[0] ? await call<RunDetail>(api.GET("/api/runs/{run_id}", { params: { path: { run_id: runs[0].id } } })) : null);
      }
      const graph = toGraph(next.base);
      setNodes(graph.nodes.map((n) => (n.id === TRIGGER_ID ? { ...n, deletable: false } : n)) as Node[]);
      setEdges(graph.edges as Edge[]);
      setLoaded(next);
      setDirty(false);
    } catch (err) {
      setError(explain(err, t));
    }
  }, [flowId, isNew]); // eslint-disable-line react-hooks/exhaustive-deps
  useEffect(() => { void load(); }, [load]);
  useEffect(() => {
    if (!dirty) return;
    // the browser's own "leave the page?" prompt while there are unsaved changes
    const warn = (e: BeforeUnloadEvent) => e.preventDefault();
    window.addEventListener("beforeunload", warn);
    setLeaveGuard(() => window.confirm(t("leaveUnsaved")));
    return () => {
      window.removeEventListener("beforeunload", warn);
      setLeaveGuard(null);
    };
  }, [dirty, t]);

  const current = useCallback((): FlowDef => toFlow(loaded!.base, nodes as GraphNode[], edges as GraphEdge[]), [loaded, nodes, edges]);
  const definition = useMemo(() => (loaded ? current() : null), [loaded, current]);
  // only the trigger's sample and the vars matter here: moving nodes must not refresh every expression preview
  const triggerNode = nodes.find((n) => n.id === TRIGGER_ID);
  const trigger = (triggerNode?.data as { trigger?: FlowDef["trigger"] } | undefined)?.trigger;
  const context = useMemo(
    () => (loaded && trigger ? sampleContext({ ...loaded.base, trigger, steps: [] }, lastRun, tested) : {}),
    [loaded, trigger, lastRun, tested],
  );
  const byNode = useMemo(() => (issues ? issuesByNode(issues.flow, issues.list) : {}), [issues]);
  const stepIds = nodes.filter((n) => n.type === "step").map((n) => n.id);

  const changed = () => setDirty(true);
  const updateNode = (id: string, data: Node["data"]) => {
    setNodes((ns) => ns.map((n) => (n.id === id ? { ...n, data } : n)));
    // an edited node's issues are stale until the next save checks it again
    setIssues((old) => (old ? { ...old, list: old.list.filter((i) => placeIssue(old.flow, i).node !== id) } : old));
    changed();
  };
  const setHandleTarget = (source: string, handle: Handle, target: string | null) => {
    setEdges((es) => {
      const rest = es.filter((e) => !(e.source === source && e.sourceHandle === handle));
      return target ? [...rest, { id: edgeId(source, handle, target), source, target, sourceHandle: handle }] : rest;
    });
    changed();
  };
  const onConnect = (c: RFConnection) => {
    if (!c.source || !c.target || c.target === TRIGGER_ID || c.source === c.target) return;
    const handle = (c.sourceHandle ?? "next") as Handle;
    // one target per handle: a new line from a handle replaces the old one
    setEdges((es) => addEdge({ ...c, id: edgeId(c.source, handle, c.target), sourceHandle: handle }, es.filter((e) => !(e.source === c.source && e.sourceHandle === handle))));
    changed();
  };
  const addStep = (kind: string, position?: { x: number; y: number }) => {
    const id = uniqueStepId(kind.includes(".") ? kind.split("@")[0].replace(".", "_") : kind, stepIds);
    const at = position ?? { x: 320, y: 120 + 110 * stepIds.length };
    setNodes((ns) => [...ns, { id, type: "step", position: at, data: { step: newStep(kind, id) } }]);
    setSelected(id);
    changed();
  };
  const onDrop = (e: DragEvent) => {
    e.preventDefault();
    const kind = e.dataTransfer.getData(DRAG_TYPE);
    if (kind) addStep(kind, flow.screenToFlowPosition({ x: e.clientX - 80, y: e.clientY - 20 }));
  };

  const save = async (message: string) => {
    if (!definition) return;
    setSaving(true);
    setError("");
    setConflict(null);
    try {
      const saved = loaded!.version === null
        ? await call<{ version: number; definition: FlowDef }>(api.POST("/api/flows", { body: { definition, message } }))
        : await call<{ version: number; definition: FlowDef }>(api.PUT("/api/flows/{flow_id}", { params: { path: { flow_id: flowId } }, body: { definition, message, expected_version: loaded!.version } }));
      setLoaded({ ...loaded!, base: definition, version: saved.version });
      setIssues(null);
      setDirty(false);
      setShowSave(false);
      setInfo(`${t("saved")} ${saved.version}`);
      if (isNew) window.history.replaceState(null, "", `/flows/${encodeURIComponent(flowId)}`);
    } catch (err) {
      setShowSave(false);
      if (err instanceof ApiFailure && err.error.type === "VersionConflict" && loaded!.version === null) setError(t("flowExists", { id: flowId }));
      else if (err instanceof ApiFailure && err.error.type === "VersionConflict") setConflict(err.error.current_version ?? 0);
      else if (err instanceof ApiFailure && err.error.issues?.length && err.error.type === "FlowInvalid") {
        setIssues({ flow: definition, list: err.error.issues });
        setError(`${t("issues")}: ${err.error.issues.length}`);
      } else setError(explain(err, t));
    } finally {
      setSaving(false);
    }
  };
  const setActive = async (active: boolean) => {
    setBusy("active");
    setError("");
    try {
      const path = { params: { path: { flow_id: flowId } } };
      await call(active ? api.POST("/api/flows/{flow_id}/activate", path) : api.POST("/api/flows/{flow_id}/deactivate", path));
      setLoaded({ ...loaded!, active });
      setInfo(active ? t("activated") : t("deactivated"));
    } catch (err) {
      setError(explain(err, t));
    } finally {
      setBusy("");
    }
  };
  const testFlow = async () => {
    setBusy("run");
    setError("");
    try {
      const run = await call<{ id: string }>(api.POST("/api/flows/{flow_id}/runs", { params: { path: { flow_id: flowId }, query: { wait: 30 } }, body: definition!.trigger.sample ?? null }));
      navigate(`/runs/${run.id}`);
    } catch (err) {
      setError(explain(err, t));
    } finally {
      setBusy("");
    }
  };
  const testStep = async (stepId: string): Promise<TestResult> => {
    const steps = context.steps as Record<string, { output: unknown }>;
    const result = await call<TestResult>(api.POST("/api/steps/test", { body: { definition: testDefinition(definition!, stepId), step_id: stepId, context: { trigger: (context as any).trigger, steps } } }));
    if (result.status === "succeeded") setTested((old) => ({ ...old, [stepId]: result.output }));
    return result;
  };

  if (!loaded) return <section className="page"><Notice kind="error">{error}</Notice>{!error && <p>{t("loading")}</p>}</section>;
  const node = nodes.find((n) => n.id === selected);
  const catchTarget = selected ? edges.find((e) => e.source === selected && e.sourceHandle === "catch")?.target ?? null : null;
  const flowIssues = byNode[""] ?? [];
  return (
    <EditorContext.Provider value={{ context, connectors, connections }}>
      <CanvasContext.Provider value={{ issues: byNode, statuses: {} }}>
        <section className="editor">
          <div className="toolbar">
            <h2>{loaded.base.name || flowId}</h2>
            <span className="muted">{flowId} {loaded.version ? `v${loaded.version}` : ""}</span>
            <span className={loaded.active ? "badge status-succeeded" : "badge"} data-testid="active-badge">{loaded.active ? t("active") : t("inactive")}</span>
            {dirty && <span className="badge status-running">{t("unsaved")}</span>}
            <span className="spacer" />
            {loaded.version !== null && <button onClick={() => setShowVersions(true)}>{t("versions")}</button>}
            {loaded.version !== null && <button onClick={testFlow} disabled={busy === "run" || dirty}>{t("testFlow")}</button>}
            {loaded.version !== null && (
              <button onClick={() => setActive(!loaded.active)} disabled={busy === "active" || dirty} title={dirty ? t("saveFirst") : ""}>{loaded.active ? t("deactivate") : t("activate")}</button>
            )}
            <button className="primary" onClick={() => setShowSave(true)} disabled={saving}>{t("save")}</button>
          </div>
          <Notice kind="error" onClose={() => setError("")}>{error}</Notice>
          {flowIssues.map((i, n) => <Notice key={n} kind="error">{i.message}</Notice>)}
          {conflict !== null && (
            <Notice kind="error">{t("conflict", { v: conflict })} <button onClick={load}>{t("reload")}</button></Notice>
          )}
          <Notice kind="ok" onClose={() => setInfo("")}>{info}</Notice>
          <div className="editor-body">
            <Palette onAdd={(kind) => addStep(kind)} />
            <Canvas nodes={nodes} edges={edges} onSelect={setSelected} onDrop={onDrop} fit={(loaded.base.steps ?? []).length > 0}
                    onNodesChange={(c) => { onNodesChange(c); if (c.some((x) => x.type === "position" || x.type === "remove")) changed(); }}
                    onEdgesChange={(c) => { onEdgesChange(c); if (c.some((x) => x.type === "remove")) changed(); }} onConnect={onConnect} />
            {node?.type === "trigger" && (
              <TriggerPanel trigger={(node.data as any).trigger} flowId={flowId} saved={loaded.version !== null} issues={byNode[TRIGGER_ID] ?? []}
                            onChange={(trigger) => updateNode(TRIGGER_ID, { ...node.data, trigger })} />
            )}
            {node?.type === "step" && (
              <StepPanel key={node.id} step={(node.data as any).step as Step} stepIds={stepIds} issues={byNode[node.id] ?? []} catchTarget={catchTarget}
                         onChange={(step) => updateNode(node.id, { ...node.data, step })}
                         onRename={(to) => { const r = renameStep(nodes as GraphNode[], edges as GraphEdge[], node.id, to); setNodes(r.nodes as Node[]); setEdges(r.edges as Edge[]); setSelected(to); changed(); }}
                         onCatch={(target) => setHandleTarget(node.id, "catch", target)}
                         onDelete={() => { setNodes((ns) => ns.filter((n) => n.id !== node.id)); setEdges((es) => es.filter((e) => e.source !== node.id && e.target !== node.id)); setSelected(null); changed(); }}
                         onTest={() => testStep(node.id)} />
            )}
            {!node && <aside className="panel muted">{t("dropHere")}</aside>}
          </div>
          {showSave && <SaveDialog onSave={save} onClose={() => setShowSave(false)} saving={saving} />}
          {showVersions && loaded.version !== null && (
            <Dialog title={t("versions")} onClose={() => setShowVersions(false)}>
              <Versions flowId={flowId} current={loaded.version} onRolledBack={() => { setShowVersions(false); void load(); setInfo(t("rolledBack")); }} />
            </Dialog>
          )}
        </section>
      </CanvasContext.Provider>
    </EditorContext.Provider>
  );
}

function SaveDialog({ onSave, onClose, saving }: { onSave: (message: string) => void; onClose: () => void; saving: boolean }) {
  const { t } = useI18n();
  const [message, setMessage] = useState("");
  return (
    <Dialog title={t("save")} onClose={onClose}>
      <form className="stack" onSubmit={(e) => { e.preventDefault(); onSave(message); }}>
        <label>{t("saveMessage")}<input name="save-message" value={message} onChange={(e) => setMessage(e.target.value)} autoFocus /></label>
        <div className="row"><button type="button" onClick={onClose}>{t("cancel")}</button><button type="submit" className="primary" disabled={saving}>{t("save")}</button></div>
      </form>
    </Dialog>
  );
}

export default function Editor({ flowId }: { flowId: string }) {
  return (
    <ReactFlowProvider>
      <EditorInner key={flowId} flowId={flowId} />
    </ReactFlowProvider>
  );
}

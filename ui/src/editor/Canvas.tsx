/**
 * The flow graph on a React Flow canvas: the trigger and step nodes with their outgoing handles
 * (`next`; one per choice rule plus `default`; `catch` for steps that can fail), issue badges in the
 * editor and status colours in the run view.
 */
import { createContext, DragEvent, ReactNode, useContext } from "react";
import {
  Background, Controls, Edge, Handle, MarkerType, Node, NodeProps, OnConnect, OnEdgesChange, OnNodesChange, Position, ReactFlow,
} from "@xyflow/react";
import { pick, stepTypeName, useI18n } from "../i18n";
import type { Placed } from "../lib/issues";
import type { Step } from "../lib/flowgraph";
import { hasNext } from "../lib/flowgraph";
import { useEditor } from "./context";

export type CanvasInfo = { issues: Record<string, Placed[]>; statuses: Record<string, string> };
export const CanvasContext = createContext<CanvasInfo>({ issues: {}, statuses: {} });

const CATCHABLE = new Set(["action", "map", "parallel"]);

function NodeShell({ id, kind, title, subtitle, children }: { id: string; kind: string; title: string; subtitle: string; children?: ReactNode }) {
  const { issues, statuses } = useContext(CanvasContext);
  const problems = issues[id] ?? [];
  const status = statuses[id];
  return (
    <div className={`fl-node fl-${kind} ${problems.length ? "has-issues" : ""} ${status ? `run-${status}` : ""}`} data-node={id} data-status={status ?? ""}>
      <div className="fl-node-title">{title}</div>
      <div className="fl-node-sub">{subtitle}</div>
      {problems.length > 0 && <div className="fl-node-issue" data-testid="node-issue" title={problems.map((p) => p.message).join("\n")}>⚠ {problems[0].message}</div>}
      {children}
    </div>
  );
}

export function TriggerNode({ id, data }: NodeProps<Node<{ trigger?: { type: string; path?: string } }>>) {
  const { t } = useI18n();
  const trigger = data.trigger ?? { type: "manual" };
  return (
    <NodeShell id={id} kind="trigger" title={`⚡ ${t("trigger")}`} subtitle={trigger.type + (trigger.path ? ` /hooks/${trigger.path}` : "")}>
      <Handle type="source" position={Position.Bottom} id="next" />
    </NodeShell>
  );
}

export function StepNode({ id, data }: NodeProps<Node<{ step?: Step }>>) {
  const { t, lang } = useI18n();
  const { connectors } = useEditor();
  const step = data.step!;
  let subtitle = stepTypeName(t, step.type);
  if (step.type === "action" && typeof step.action === "string") {
    const [connector, action] = step.action.split(".");
    subtitle = pick(connectors[connector.split("@")[0]]?.actions?.[action]?.title, lang) || step.action;
  }
  const rules: unknown[] = step.type === "choice" ? step.choices ?? [] : [];
  return (
    <NodeShell id={id} kind={step.type} title={step.title || step.id} subtitle={subtitle}>
      <Handle type="target" position={Position.Top} />
      {hasNext(step.type) && <Handle type="source" position={Position.Bottom} id="next" />}
      {rules.map((_, n) => (
        <Handle key={n} type="source" position={Position.Bottom} id={`choice-${n}`} className="handle-choice"
                style={{ left: `${((n + 1) * 100) / (rules.length + 2)}%` }} title={`${t("conditions")} ${n + 1}`} />
      ))}
      {step.type === "choice" && (
        <Handle type="source" position={Position.Bottom} id="default" className="handle-default"
                style={{ left: `${((rules.length + 1) * 100) / (rules.length + 2)}%` }} title={t("otherwise")} />
      )}
      {CATCHABLE.has(step.type) && <Handle type="source" position={Position.Right} id="catch" className="handle-catch" title={t("onError")} />}
    </NodeShell>
  );
}

const nodeTypes = { trigger: TriggerNode, step: StepNode };

/** Edge labels and styles by handle: choice rules are numbered, `default` says otherwise, `catch` is red. */
export function styleEdge(edge: Edge, otherwise: string): Edge {
  const handle = edge.sourceHandle ?? "next";
  const label = handle.startsWith("choice-") ? `${Number(handle.slice(7)) + 1}` : handle === "default" ? otherwise : handle === "catch" ? "⚠" : undefined;
  return { ...edge, label, className: `edge-${handle.split("-")[0]}`, markerEnd: { type: MarkerType.ArrowClosed } };
}

type Props = {
  nodes: Node[];
  edges: Edge[];
  readOnly?: boolean;
  onNodesChange?: OnNodesChange;
  onEdgesChange?: OnEdgesChange;
  onConnect?: OnConnect;
  onSelect: (id: string | null) => void;
  onDrop?: (e: DragEvent) => void;
  /** Fit the graph in view when the canvas opens (a new flow's lone trigger stays top left instead). */
  fit?: boolean;
};

export default function Canvas({ nodes, edges, readOnly, onNodesChange, onEdgesChange, onConnect, onSelect, onDrop, fit = true }: Props) {
  const { t } = useI18n();
  return (
    <div className="canvas" data-testid="canvas" onDragOver={(e) => { e.preventDefault(); e.dataTransfer.dropEffect = "move"; }} onDrop={onDrop}>
      <ReactFlow nodes={nodes} edges={edges.map((e) => styleEdge(e, t("otherwise")))} nodeTypes={nodeTypes}
                 onNodesChange={onNodesChange} onEdgesChange={onEdgesChange} onConnect={onConnect}
                 nodesDraggable={!readOnly} nodesConnectable={!readOnly} elementsSelectable deleteKeyCode={readOnly ? null : ["Delete", "Backspace"]}
                 onNodeClick={(_, node) => onSelect(node.id)} onPaneClick={() => onSelect(null)} fitView={fit} fitViewOptions={{ maxZoom: 1 }} defaultViewport={{ x: 260, y: 30, zoom: 1 }}
                 proOptions={{ hideAttribution: true }}>
        <Background />
        <Controls showInteractive={false} />
      </ReactFlow>
    </div>
  );
}

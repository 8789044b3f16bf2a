/** The side panel of a step: its form by type, connection, retry/timeout/catch in plain words, and a test run. */
import { useState } from "react";
import { explain } from "../errors";
import { pick, stepTypeName, useI18n } from "../i18n";
import type { Placed } from "../lib/issues";
import type { Step } from "../lib/flowgraph";
import { JsonBlock, Notice, StatusBadge } from "../ui";
import ArgsForm from "./ArgsForm";
import ExpressionInput from "./ExpressionInput";
import { useEditor } from "./context";

type Props = {
  step: Step;
  stepIds: string[];
  issues: Placed[];
  catchTarget: string | null;
  onChange: (step: Step) => void;
  onRename: (to: string) => void;
  onCatch: (target: string | null) => void;
  onDelete: () => void;
  onTest: () => Promise<TestResult>;
};

export type TestResult = { status: string; input?: unknown; output?: unknown; error?: { type: string; message: string } | null; attempts?: unknown[]; duration_ms?: number };

const TEMPORARY = ["Transient", "RateLimited"];
const SET_SCHEMA = { type: "object", properties: { value: { title: "Value", "x-title-zh": "值" } } };

/** The "retry N times, waiting S seconds" reading of a step's retry list, when it has that shape. */
function simpleRetry(retry: unknown): { times: number; interval: number } | null {
  if (!Array.isArray(retry) || retry.length !== 1 || typeof retry[0] !== "object") return null;
  const policy = retry[0] as Record<string, any>;
  return { times: Math.max(0, (policy.max_attempts ?? 1) - 1), interval: policy.interval ?? 1 };
}

function JsonText({ value, onChange, label }: { value: unknown; onChange: (v: unknown) => void; label: string }) {
  const { t } = useI18n();
  const [text, setText] = useState(JSON.stringify(value, null, 2));
  const [error, setError] = useState("");
  return (
    <label>{label}
      <textarea className="mono" rows={8} value={text} aria-label={label} onChange={(e) => {
        setText(e.target.value);
        try {
          onChange(JSON.parse(e.target.value));
          setError("");
        } catch (err) {
          setError(`${t("errInvalidJson")}: ${(err as Error).message}`);
        }
      }} />
      {error && <div className="expr-error">{error}</div>}
    </label>
  );
}

export default function StepPanel({ step, stepIds, issues, catchTarget, onChange, onRename, onCatch, onDelete, onTest }: Props) {
  const { t, lang } = useI18n();
  const { connectors, connections, context } = useEditor();
  const [rename, setRename] = useState(step.id);
  const [result, setResult] = useState<TestResult | null>(null);
  const [testError, setTestError] = useState("");
  const [testing, setTesting] = useState(false);
  const set = (patch: Record<string, unknown>) => {
    const next: Step = { ...step, ...patch };
    for (const [k, v] of Object.entries(patch)) if (v === undefined || v === "") delete next[k];
    onChange(next);
  };
  const [connectorName, actionName] = step.type === "action" ? String(step.action ?? "").split(".") : [];
  const connector = connectorName ? connectors[connectorName.split("@")[0]] : undefined;
  const action = connector?.actions?.[actionName];
  const usable = connections.filter((c) => c.connector === connector?.name);
  const retry = simpleRetry(step.retry);
  const canFail = ["action", "map", "parallel"].includes(step.type);
  // issues about a field of the form show on that field, the rest at the top of the panel
  const formFields = step.type === "action" ? Object.keys(action?.input_schema?.properties ?? {}) : step.type === "set" ? ["value"] : [];
  const fieldErrors = Object.fromEntries(issues.filter((i) => i.field && formFields.includes(i.field)).map((i) => [i.field!, i.message]));
  const general = issues.filter((i) => !i.field || !formFields.includes(i.field));

  const test = async () => {
    setTesting(true);
    setTestError("");
    setResult(null);
    try {
      setResult(await onTest());
    } catch (err) {
      setTestError(explain(err, t));
    } finally {
      setTesting(false);
    }
  };

  return (
    <aside className="panel" data-testid="step-panel" aria-label={step.id}>
      <h3>{step.type === "action" ? pick(action?.title, lang) || step.action : stepTypeName(t, step.type)}</h3>
      {action?.description && <p className="muted">{action.description}</p>}
      <label>{t("stepId")}
        <input name="step-id" value={rename} onChange={(e) => setRename(e.target.value)} onBlur={() => rename !== step.id && /^[A-Za-z_][A-Za-z0-9_]*$/.test(rename) && !stepIds.includes(rename) ? onRename(rename) : setRename(step.id)} />
      </label>
      <label>{t("title")}<input name="step-title" value={step.title ?? ""} onChange={(e) => set({ title: e.target.value })} /></label>
      {general.map((i, n) => <Notice key={n} kind="error">{i.field ? `${i.field}: ` : ""}{i.message}</Notice>)}

      {step.type === "action" && (
        <>
          {(connector?.connection || usable.length > 0) && (
            <label>{t("connection")}
              <select name="connection" value={step.connection ?? ""} onChange={(e) => set({ connection: e.target.value || undefined })}>
                <option value="">{t("noConnection")}</option>
                {usable.map((c) => <option key={c.name} value={c.name}>{c.name}</option>)}
              </select>
            </label>
          )}
          <ArgsForm key={`${step.id}:${step.action}`} schema={action?.input_schema} args={step.args} onChange={(args) => set({ args })}
                    connector={connector?.name} action={actionName} connection={step.connection} fieldErrors={fieldErrors} />
        </>
      )}
      {step.type === "set" && (
        <ArgsForm key={step.id} schema={SET_SCHEMA} args={{ value: step.value }} onChange={(args) => onChange({ ...step, value: args.value ?? null })} fieldErrors={fieldErrors} />
      )}
      {step.type === "choice" && (
        <fieldset>
          <legend>{t("conditions")}</legend>
          <p className="muted">{t("conditionHelp")}</p>
          {(step.choices ?? []).map((rule: { when: string; next?: string }, n: number) => (
            <div key={n} className="rule" data-rule={n}>
              <span className="rule-no">{n + 1}</span>
              <ExpressionInput label={`${t("conditions")} ${n + 1}`} value={rule.when ?? ""} context={context}
                               onChange={(when) => set({ choices: step.choices.map((r: object, i: number) => (i === n ? { ...r, when } : r)) })} />
              <span className="muted">→ {rule.next ?? "?"}</span>
              <button type="button" onClick={() => set({ choices: step.choices.filter((_: unknown, i: number) => i !== n) })}>✕</button>
            </div>
          ))}
          <button type="button" onClick={() => set({ choices: [...(step.choices ?? []), { when: "" }] })}>{t("addCondition")}</button>
          <p className="muted">{t("otherwise")} → {step.default ?? "?"}</p>
        </fieldset>
      )}
      {step.type === "map" && (
        <>
          <label>{t("items")}<ExpressionInput value={step.items ?? ""} context={context} onChange={(items) => set({ items })} /></label>
          <label>{t("maxConcurrency")}<input type="number" min={1} value={step.max_concurrency ?? ""} onChange={(e) => set({ max_concurrency: e.target.value ? Number(e.target.value) : undefined })} /></label>
          <JsonText key={`${step.id}-steps`} label={t("innerSteps")} value={step.steps ?? []} onChange={(steps) => set({ steps })} />
        </>
      )}
      {step.type === "parallel" && <JsonText key={`${step.id}-branches`} label={t("branches")} value={step.branches ?? []} onChange={(branches) => set({ branches })} />}
      {step.type === "wait" && <label>{t("waitSeconds")}<input type="number" min={0} value={step.seconds ?? ""} onChange={(e) => set({ seconds: Number(e.target.value) })} /></label>}
      {step.type === "fail" && (
        <>
          <label>{t("errorName")}<input value={step.error ?? ""} onChange={(e) => set({ error: e.target.value })} /></label>
          <label>{t("message")}<input value={step.message ?? ""} onChange={(e) => set({ message: e.target.value })} /></label>
        </>
      )}

      {canFail && (
        <fieldset className="settings">
          <legend>{t("settings")}</legend>
          <label className="inline">{t("retryTimes")}
            <input name="retry-times" type="number" min={0} max={20} value={retry ? retry.times : ""} placeholder="—"
                   onChange={(e) => set({ retry: e.target.value === "" ? undefined : Number(e.target.value) === 0 ? [] : [{ errors: TEMPORARY, max_attempts: Number(e.target.value) + 1, interval: retry?.interval ?? 1, backoff_rate: 2 }] })} />
            {t("times")}
          </label>
          {retry && retry.times > 0 && (
            <label className="inline">{t("retryWait")}
              <input type="number" min={0} step="0.5" value={retry.interval} onChange={(e) => set({ retry: [{ ...(step.retry[0] as object), interval: Number(e.target.value) }] })} />
            </label>
          )}
          <label className="inline">{t("timeout")}
            <input name="timeout" type="number" min={0} value={step.timeout ?? ""} onChange={(e) => set({ timeout: e.target.value ? Number(e.target.value) : undefined })} />
          </label>
          <small className="muted">{t("timeoutHelp")}</small>
          <label>{t("onError")}
            <select name="catch" value={catchTarget ?? ""} onChange={(e) => onCatch(e.target.value || null)}>
              <option value="">{t("onErrorNone")}</option>
              {stepIds.filter((id) => id !== step.id).map((id) => <option key={id} value={id}>{id}</option>)}
            </select>
          </label>
          <small className="muted">{t("onErrorHelp")}</small>
        </fieldset>
      )}

      <div className="row">
        {["action", "set", "choice"].includes(step.type) && <button type="button" onClick={test} disabled={testing}>{testing ? t("loading") : t("testStep")}</button>}
        <span className="spacer" />
        <button type="button" className="danger" onClick={onDelete}>{t("delete")}</button>
      </div>
      <Notice kind="error">{testError}</Notice>
      {result && (
        <div className="test-result" data-testid="test-result">
          <StatusBadge status={result.status} /> {result.duration_ms != null && <span className="muted">{Math.round(result.duration_ms)} ms</span>}
          {result.error && <Notice kind="error">{result.error.type}: {result.error.message}</Notice>}
          <h4>{t("output")}</h4>
          <JsonBlock value={result.output} label={t("output")} />
        </div>
      )}
    </aside>
  );
}

/** The trigger's side panel: how the flow starts, sample data, and the webhook URL with a curl example. */
import { useState } from "react";
import { pick, useI18n } from "../i18n";
import type { FlowDef } from "../lib/flowgraph";
import type { Placed } from "../lib/issues";
import { curlFor, hookPath } from "../lib/hooks";
import { CopyButton, Notice } from "../ui";
import { useEditor } from "./context";

type Trigger = FlowDef["trigger"];

type Props = { trigger: Trigger; flowId: string; onChange: (t: Trigger) => void; saved: boolean; issues: Placed[] };

function JsonObject({ label, value, onChange, name }: { label: string; value: unknown; onChange: (v: unknown) => void; name: string }) {
  const { t } = useI18n();
  const [text, setText] = useState(JSON.stringify(value ?? {}, null, 2));
  const [error, setError] = useState("");
  return (
    <label>{label}
      <textarea name={name} className="mono" rows={4} value={text} onChange={(e) => {
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

export default function TriggerPanel({ trigger, flowId, onChange, saved, issues }: Props) {
  const { t, lang } = useI18n();
  const { connectors, connections } = useEditor();
  const callbacks: [string, string][] = [];
  const polls: [string, string][] = [];
  for (const c of Object.values(connectors)) {
    for (const [name, info] of Object.entries(c.triggers ?? {}) as [string, { kind?: string; title?: unknown }][]) {
      const label = `${pick(c.title, lang) || c.name} · ${pick(info.title, lang) || name}`;
      (info.kind === "poll" ? polls : callbacks).push([`${c.name}.${name}`, label]);
    }
  }
  const sampleOf = (type: string) => {
    const [connector, name] = type.split(".");
    return (connectors[connector]?.triggers?.[name] as { sample?: unknown } | undefined)?.sample;
  };
  const [sampleText, setSampleText] = useState(JSON.stringify(trigger.sample ?? {}, null, 2));
  const [sampleError, setSampleError] = useState("");
  const set = (patch: Record<string, unknown>) => {
    const next = { ...trigger, ...patch };
    for (const [k, v] of Object.entries(patch)) if (v === undefined || v === "") delete next[k];
    onChange(next);
  };
  const changeType = (type: string) => {
    const keep = trigger.sample ? { sample: trigger.sample } : {};
    let next: Trigger;
    if (type === "webhook") next = { type, path: trigger.path ?? flowId, ...keep };
    else if (type === "schedule") next = { type, cron: "0 9 * * *", timezone: "Asia/Shanghai" };
    else if (type.startsWith("poll:")) next = { type: "poll", source: type.slice(5), interval: 300, ...(sampleOf(type.slice(5)) ? { sample: sampleOf(type.slice(5)) } : {}) };
    else if (type === "manual") next = { type, ...keep };
    else next = { type, path: flowId, ...(sampleOf(type) ? { sample: sampleOf(type) } : {}) };
    setSampleText(JSON.stringify(next.sample ?? {}, null, 2));
    onChange(next);
  };
  const connector = trigger.type === "poll" ? String(trigger.source ?? "").split(".")[0] : trigger.type.includes(".") ? trigger.type.split(".")[0] : null;
  const usable = connections.filter((c) => c.connector === connector);
  const hook = hookPath(trigger, flowId);
  const url = `${window.location.origin}/hooks/${hook ?? ""}`;
  const selectValue = trigger.type === "poll" ? `poll:${trigger.source}` : trigger.type;
  return (
    <aside className="panel" data-testid="trigger-panel">
      <h3>{t("trigger")}</h3>
      {issues.map((i, n) => <Notice key={n} kind="error">{i.field ? `${i.field}: ` : ""}{i.message}</Notice>)}
      <label>{t("triggerType")}
        <select name="trigger-type" value={selectValue} onChange={(e) => changeType(e.target.value)}>
          <option value="manual">{t("manual")}</option>
          <option value="webhook">{t("webhook")}</option>
          <option value="schedule">{t("schedule")}</option>
          {callbacks.length > 0 && <optgroup label={t("callbacks")}>{callbacks.map(([v, l]) => <option key={v} value={v}>{l}</option>)}</optgroup>}
          {polls.length > 0 && <optgroup label={t("polls")}>{polls.map(([v, l]) => <option key={v} value={`poll:${v}`}>{l}</option>)}</optgroup>}
        </select>
      </label>
      {connector && (
        <label>{t("connection")}
          <select name="trigger-connection" value={trigger.connection ?? ""} onChange={(e) => set({ connection: e.target.value || undefined })}>
            <option value="">{t("noConnection")}</option>
            {usable.map((c) => <option key={c.name} value={c.name}>{c.name}</option>)}
          </select>
        </label>
      )}
      {trigger.type === "poll" && (
        <>
          <label>{t("interval")}<input name="trigger-interval" type="number" min={1} value={trigger.interval ?? ""} onChange={(e) => set({ interval: e.target.value ? Number(e.target.value) : undefined })} /></label>
          <JsonObject name="trigger-args" label={t("triggerArgs")} value={trigger.args} onChange={(args) => set({ args })} />
        </>
      )}
      {connector && trigger.type !== "poll" && <JsonObject name="trigger-config" label={t("triggerConfig")} value={trigger.config} onChange={(config) => set({ config })} />}
      {hook !== null && (
        <>
          <label>{t("path")}<input name="trigger-path" value={trigger.path ?? ""} placeholder={flowId} onChange={(e) => set({ path: e.target.value })} /></label>
          <label>{t("respond")}
            <select name="trigger-respond" value={trigger.respond ?? "immediately"} onChange={(e) => set({ respond: e.target.value === "immediately" ? undefined : e.target.value })}>
              <option value="immediately">{t("respondImmediately")}</option>
              <option value="last">{t("respondLast")}</option>
            </select>
          </label>
          <div className="webhook-url">
            <div className="field-head"><strong>{t("webhookUrl")}</strong><CopyButton text={url} /></div>
            <code data-testid="webhook-url">{url}</code>
            {trigger.type === "webhook" && <div className="field-head"><strong>{t("curlExample")}</strong><CopyButton text={curlFor(url, trigger)} /></div>}
            {trigger.type === "webhook" && <pre className="json">{curlFor(url, trigger)}</pre>}
            {!saved && <small className="muted">{t("saveFirst")}</small>}
          </div>
        </>
      )}
      {trigger.type === "schedule" && (
        <>
          <label>{t("cron")}<input name="trigger-cron" className="mono" value={trigger.cron ?? ""} onChange={(e) => set({ cron: e.target.value })} /></label>
          <label>{t("timezone")}<input name="trigger-tz" value={trigger.timezone ?? ""} onChange={(e) => set({ timezone: e.target.value })} /></label>
        </>
      )}
      {trigger.type !== "schedule" && (
        <label>{t("sample")}
          <textarea name="trigger-sample" className="mono" rows={8} value={sampleText} onChange={(e) => {
            setSampleText(e.target.value);
            try {
              set({ sample: JSON.parse(e.target.value) });
              setSampleError("");
            } catch (err) {
              setSampleError(`${t("errInvalidJson")}: ${(err as Error).message}`);
            }
          }} />
          <small className="muted">{t("sampleHelp")}</small>
          {sampleError && <div className="expr-error">{sampleError}</div>}
        </label>
      )}
    </aside>
  );
}

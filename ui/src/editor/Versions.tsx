/** Version history with a side-by-side diff against the current version and roll back. */
import { useEffect, useState } from "react";
import { api, call } from "../api/client";
import { explain } from "../errors";
import { useI18n } from "../i18n";
import { sideBySide } from "../lib/diff";
import { Notice, when } from "../ui";

type Version = { version: number; created_by?: string; message?: string; created_at?: number };

export default function Versions({ flowId, current, onRolledBack }: { flowId: string; current: number; onRolledBack: () => void }) {
  const { t } = useI18n();
  const [versions, setVersions] = useState<Version[]>([]);
  const [diff, setDiff] = useState<{ from: number; text: string } | null>(null);
  const [error, setError] = useState("");
  useEffect(() => {
    call<Version[]>(api.GET("/api/flows/{flow_id}/versions", { params: { path: { flow_id: flowId } } })).then(setVersions, (e) => setError(explain(e, t)));
  }, [flowId, current, t]);
  const showDiff = async (from: number) => {
    try {
      const found = await call<{ text: string }>(api.GET("/api/flows/{flow_id}/diff", { params: { path: { flow_id: flowId }, query: { from } } }));
      setDiff({ from, text: found.text });
    } catch (e) {
      setError(explain(e, t));
    }
  };
  const rollback = async (to: number) => {
    try {
      await call(api.POST("/api/flows/{flow_id}/rollback", { params: { path: { flow_id: flowId } }, body: { to_version: to, expected_version: current, message: "" } }));
      onRolledBack();
    } catch (e) {
      setError(explain(e, t));
    }
  };
  return (
    <div className="versions">
      <Notice kind="error">{error}</Notice>
      <table className="grid">
        <tbody>
          {versions.map((v) => (
            <tr key={v.version} data-version={v.version}>
              <td>v{v.version}{v.version === current && <span className="muted"> ({t("current")})</span>}</td>
              <td>{v.message}</td>
              <td className="muted">{v.created_by} {when(v.created_at)}</td>
              <td>{v.version !== current && <><button onClick={() => showDiff(v.version)}>{t("diff")}</button> <button onClick={() => rollback(v.version)}>{t("rollback")}</button></>}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {diff && (
        <table className="diff" data-testid="diff">
          <thead><tr><th>v{diff.from}</th><th>v{current}</th></tr></thead>
          <tbody>
            {sideBySide(diff.text).map((r, i) => (
              <tr key={i} className={`diff-${r.kind}`}><td className="mono">{r.left}</td><td className="mono">{r.right}</td></tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

/** The audit log (admins): filter by actor, target and time. */
import { FormEvent, useCallback, useEffect, useState } from "react";
import { api, call } from "../api/client";
import { explain } from "../errors";
import { useI18n } from "../i18n";
import { JsonBlock, Notice, when } from "../ui";

type Entry = { id: number; at: number; actor: string; action: string; target_type: string; target_id: string; details?: unknown };

export default function Audit() {
  const { t } = useI18n();
  const [actor, setActor] = useState("");
  const [target, setTarget] = useState("");
  const [since, setSince] = useState("");
  const [entries, setEntries] = useState<Entry[]>([]);
  const [open, setOpen] = useState<number | null>(null);
  const [error, setError] = useState("");
  const load = useCallback(async () => {
    setError("");
    const query: Record<string, string | number> = { limit: 200 };
    if (actor) query.actor = actor;
    if (target) query.target_id = target;
    if (since) query.since = new Date(since).getTime() / 1000;
    try {
      setEntries(await call<Entry[]>(api.GET("/api/audit", { params: { query: query as any } })));
    } catch (err) {
      setError(explain(err, t));
    }
  }, [actor, target, since, t]);
  useEffect(() => { void load(); }, []); // eslint-disable-line react-hooks/exhaustive-deps
  const submit = (e: FormEvent) => { e.preventDefault(); void load(); };
  return (
    <section className="page">
      <form className="toolbar" onSubmit={submit}>
        <h2>{t("audit")}</h2>
        <input placeholder={t("actor")} aria-label={t("actor")} value={actor} onChange={(e) => setActor(e.target.value)} />
        <input placeholder={t("target")} aria-label={t("target")} value={target} onChange={(e) => setTarget(e.target.value)} />
        <input type="datetime-local" aria-label={t("since")} value={since} onChange={(e) => setSince(e.target.value)} />
        <button type="submit">{t("filter")}</button>
      </form>
      <Notice kind="error">{error}</Notice>
      <table className="grid">
        <thead><tr><th>{t("at")}</th><th>{t("actor")}</th><th>{t("action")}</th><th>{t("target")}</th><th /></tr></thead>
        <tbody>
          {entries.map((e) => (
            <tr key={e.id} onClick={() => setOpen(open === e.id ? null : e.id)}>
              <td>{when(e.at)}</td><td>{e.actor}</td><td>{e.action}</td><td>{e.target_type} {e.target_id}</td>
              <td>{open === e.id && <JsonBlock value={e.details} />}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

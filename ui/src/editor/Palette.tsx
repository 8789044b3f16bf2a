/** The step palette: control-flow blocks and every connector's actions, grouped and searchable; drag onto the canvas. */
import { DragEvent, useMemo, useState } from "react";
import { pick, stepTypeName, useI18n } from "../i18n";
import { useEditor } from "./context";

export const DRAG_TYPE = "application/x-flowlink-step";
const CONTROL = ["set", "choice", "map", "parallel", "wait", "fail", "succeed"];
/** connectors whose group starts open (the rest open on a click or when a search matches them) */
const OPEN = new Set(["core", "http"]);

type Item = { kind: string; label: string; detail: string };

export default function Palette({ onAdd }: { onAdd: (kind: string) => void }) {
  const { t, lang } = useI18n();
  const { connectors } = useEditor();
  const [q, setQ] = useState("");
  const groups = useMemo(() => {
    const all: { name: string; items: Item[]; open: boolean }[] = [{ name: t("controlFlow"), items: CONTROL.map((k) => ({ kind: k, label: stepTypeName(t, k), detail: k })), open: true }];
    for (const c of Object.values(connectors).sort((a, b) => a.name.localeCompare(b.name))) {
      const items = Object.entries(c.actions ?? {}).map(([name, a]) => ({ kind: `${c.name}.${name}`, label: pick(a.title, lang) || name, detail: `${c.name}.${name}` }));
      all.push({ name: `${pick(c.title, lang) || c.name}${c.categories?.length ? ` · ${c.categories[0]}` : ""}`, items, open: OPEN.has(c.name) });
    }
    const needle = q.trim().toLowerCase();
    return all
      .map((g) => ({ ...g, open: g.open || !!needle, items: g.items.filter((i) => !needle || `${g.name} ${i.label} ${i.detail}`.toLowerCase().includes(needle)) }))
      .filter((g) => g.items.length);
  }, [connectors, lang, q, t]);
  const start = (e: DragEvent, kind: string) => {
    e.dataTransfer.setData(DRAG_TYPE, kind);
    e.dataTransfer.effectAllowed = "move";
  };
  return (
    <aside className="palette" data-testid="palette">
      <input type="search" placeholder={t("paletteSearch")} aria-label={t("paletteSearch")} value={q} onChange={(e) => setQ(e.target.value)} />
      {groups.map((g) => (
        <details key={`${g.name}:${g.open}`} open={g.open}>
          <summary>{g.name}</summary>
          {g.items.map((i) => (
            <div key={i.kind} className="palette-item" draggable onDragStart={(e) => start(e, i.kind)} onDoubleClick={() => onAdd(i.kind)}
                 data-kind={i.kind} title={i.detail}>
              {i.label}{i.detail && <small className="muted"> {i.detail}</small>}
            </div>
          ))}
        </details>
      ))}
    </aside>
  );
}

/** Small shared pieces: notices, JSON blocks, dialogs, time formatting, the copy button. */
import { ReactNode, useState } from "react";
import { useI18n } from "./i18n";

export function Notice({ kind, children, onClose }: { kind: "error" | "ok" | "info"; children: ReactNode; onClose?: () => void }) {
  if (!children) return null;
  return (
    <div className={`notice notice-${kind}`} role={kind === "error" ? "alert" : "status"}>
      <span>{children}</span>
      {onClose && <button className="link" onClick={onClose} aria-label="close">×</button>}
    </div>
  );
}

export function JsonBlock({ value, label }: { value: unknown; label?: string }) {
  return (
    <pre className="json" aria-label={label}>
      {value === undefined ? "" : JSON.stringify(value, null, 2)}
    </pre>
  );
}

export function Dialog({ title, children, onClose }: { title: string; children: ReactNode; onClose: () => void }) {
  return (
    <div className="backdrop" onClick={onClose}>
      <div className="dialog" role="dialog" aria-label={title} onClick={(e) => e.stopPropagation()}>
        <h3>{title}</h3>
        {children}
      </div>
    </div>
  );
}

export function when(epoch?: number | null): string {
  return epoch ? new Date(epoch * 1000).toLocaleString() : "—";
}

export function StatusBadge({ status }: { status?: string | null }) {
  const { t } = useI18n();
  if (!status) return <span className="badge">—</span>;
  const known = ["succeeded", "failed", "running", "cancelled", "skipped"] as const;
  const label = (known as readonly string[]).includes(status) ? t(status as (typeof known)[number]) : status;
  return <span className={`badge status-${status}`} data-status={status}>{label}</span>;
}

export function CopyButton({ text }: { text: string }) {
  const { t } = useI18n();
  const [done, setDone] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      // clipboard needs a secure context: fall back to a hidden textarea
      const area = document.createElement("textarea");
      area.value = text;
      document.body.appendChild(area);
      area.select();
      document.execCommand("copy");
      area.remove();
    }
    setDone(true);
    setTimeout(() => setDone(false), 1500);
  };
  return <button type="button" onClick={copy}>{done ? t("copied") : t("copy")}</button>;
}

/** Every error a person can cause, explained in words. */
import { ApiFailure } from "./api/client";
import type { Key } from "./i18n";

type T = (key: Key, vars?: Record<string, string | number>) => string;

export function explain(err: unknown, t: T): string {
  if (err instanceof ApiFailure) {
    if (err.status === 0) return t("errNetwork");
    if (err.status === 403) return t("errPermission");
    if (err.error.type === "VersionConflict") return t("conflict", { v: err.error.current_version ?? "?" });
    const issues = (err.error.issues ?? []).map((i) => `${i.pointer ? i.pointer + ": " : ""}${i.message}`);
    return [err.error.message, ...issues].join("\n");
  }
  return err instanceof Error ? err.message : t("errGeneric");
}

/**
 * A JMESPath (or `{{ }}` template) box: completes context paths from sample data or the last run,
 * flags invalid syntax as you type, and previews the value with the engine's own evaluator.
 */
import { KeyboardEvent, useEffect, useMemo, useRef, useState } from "react";
import { api, call } from "../api/client";
import { useI18n } from "../i18n";
import { applyCompletion, completions, contextPaths, syntaxError, templateErrors, tokenAt } from "../lib/paths";

type Props = {
  value: string;
  onChange: (value: string) => void;
  context: Record<string, unknown>;
  mode?: "expr" | "template";
  id?: string;
  label?: string;
  placeholder?: string;
};

type Preview = { ok: boolean; value?: unknown; error?: { message: string } };

export default function ExpressionInput({ value, onChange, context, mode = "expr", id, label, placeholder }: Props) {
  const { t } = useI18n();
  const input = useRef<HTMLInputElement>(null);
  const [caret, setCaret] = useState(0);
  const [focused, setFocused] = useState(false);
  const [chosen, setChosen] = useState(0);
  const [preview, setPreview] = useState<Preview | null>(null);
  const paths = useMemo(() => contextPaths(context), [context]);
  const syntax = mode === "expr" ? syntaxError(value) : templateErrors(value)[0] ?? null;
  const token = tokenAt(value, caret).token;
  const suggestions = focused && token ? completions(paths, token) : [];

  useEffect(() => {
    if (syntax || !value.trim()) return setPreview(null);
    const timer = setTimeout(async () => {
      try {
        setPreview(await call<Preview>(api.POST("/api/ui/preview", { body: { expression: value, mode, context } })));
      } catch {
        setPreview(null);
      }
    }, 250);
    return () => clearTimeout(timer);
  }, [value, mode, context, syntax]);

  const accept = (path: string) => {
    const next = applyCompletion(value, caret, path);
    onChange(next.text);
    setCaret(next.caret);
    requestAnimationFrame(() => input.current?.setSelectionRange(next.caret, next.caret));
  };
  const onKey = (e: KeyboardEvent<HTMLInputElement>) => {
    if (!suggestions.length) return;
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      setChosen((c) => (c + (e.key === "ArrowDown" ? 1 : suggestions.length - 1)) % suggestions.length);
    } else if (e.key === "Tab" || e.key === "Enter") {
      e.preventDefault();
      accept(suggestions[Math.min(chosen, suggestions.length - 1)]);
    } else if (e.key === "Escape") setFocused(false);
  };

  return (
    <div className={`expr ${syntax && value ? "expr-invalid" : ""}`}>
      <input ref={input} id={id} aria-label={label} className="mono" value={value} placeholder={placeholder ?? (mode === "expr" ? "trigger.body.name" : "Hello {{ trigger.body.name }}")}
             aria-invalid={!!(syntax && value)}
             onChange={(e) => { onChange(e.target.value); setCaret(e.target.selectionStart ?? e.target.value.length); setChosen(0); }}
             onSelect={(e) => setCaret((e.target as HTMLInputElement).selectionStart ?? 0)}
             onFocus={() => setFocused(true)} onBlur={() => setTimeout(() => setFocused(false), 150)} onKeyDown={onKey} />
      {suggestions.length > 0 && (
        <ul className="suggestions" role="listbox">
          {suggestions.map((s, i) => (
            <li key={s} role="option" aria-selected={i === chosen} className={i === chosen ? "chosen" : ""} onMouseDown={(e) => { e.preventDefault(); accept(s); }}>{s}</li>
          ))}
        </ul>
      )}
      {syntax && value ? <div className="expr-error" data-testid="expr-error">{t("invalidExpression")}: {syntax}</div>
        : preview && (preview.ok
          ? <div className="expr-preview" data-testid="expr-preview">{t("preview")}: <code>{JSON.stringify(preview.value)}</code></div>
          : <div className="expr-error" data-testid="expr-error">{preview.error?.message}</div>)}
    </div>
  );
}

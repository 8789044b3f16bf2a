/**
 * Expression help: the context paths an expression can read (from sample data or the last run),
 * completion of the path being typed, and JMESPath syntax checking as you type.
 */
import { compile } from "jmespath";

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

function segment(key: string): string {
  return IDENT.test(key) ? key : JSON.stringify(key);
}

/** Every path into `value` (objects by key, the first element of lists as `[0]`), depth-first, up to `limit`. */
export function contextPaths(value: unknown, prefix = "", limit = 500): string[] {
  const found: string[] = [];
  const walk = (node: unknown, path: string, depth: number) => {
    if (found.length >= limit || depth > 8) return;
    if (path) found.push(path);
    if (Array.isArray(node)) {
      if (node.length) walk(node[0], `${path}[0]`, depth + 1);
    } else if (node && typeof node === "object") {
      for (const [key, child] of Object.entries(node)) walk(child, path ? `${path}.${segment(key)}` : segment(key), depth + 1);
    }
  };
  walk(value, prefix, 0);
  return found;
}

/** The path-like token that ends at `caret` in `text` (what completion replaces). */
export function tokenAt(text: string, caret: number): { start: number; token: string } {
  let start = caret;
  while (start > 0 && /[A-Za-z0-9_.\[\]"]/.test(text[start - 1])) start--;
  return { start, token: text.slice(start, caret) };
}

/** Paths that extend the token being typed, shortest first (so `trigger.` offers its fields before deeper ones). */
export function completions(paths: string[], token: string, max = 8): string[] {
  const needle = token.toLowerCase();
  const hits = paths.filter((p) => p.toLowerCase().startsWith(needle) && p !== token);
  const depth = (p: string) => p.split(".").length;
  return hits.sort((a, b) => depth(a) - depth(b) || a.localeCompare(b)).slice(0, max);
}

/** Apply a completion: the token at the caret is replaced; returns the new text and caret. */
export function applyCompletion(text: string, caret: number, path: string): { text: string; caret: number } {
  const { start } = tokenAt(text, caret);
  return { text: text.slice(0, start) + path + text.slice(caret), caret: start + path.length };
}

/** null when `expression` is valid JMESPath, else the parser's complaint. */
export function syntaxError(expression: string): string | null {
  if (!expression.trim()) return "empty expression";
  // jmespath.js accepts a dangling dot that the engine's parser (Python jmespath) rejects
  if (/\.\s*$/.test(expression)) return "unexpected end of expression after '.'";
  try {
    compile(expression);
    return null;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

/** The `{{ ... }}` parts of a string template that are not valid JMESPath. */
export function templateErrors(template: string): string[] {
  const errors: string[] = [];
  for (const match of template.matchAll(/\{\{(.*?)\}\}/gs)) {
    const problem = syntaxError(match[1]);
    if (problem) errors.push(`{{${match[1]}}}: ${problem}`);
  }
  return errors;
}

/** The API's unified diff of two versions, laid out side by side. */

/** A unified diff as aligned left/right rows. */
export function sideBySide(text: string): { left: string; right: string; kind: string }[] {
  const rows: { left: string; right: string; kind: string }[] = [];
  let removed: string[] = [];
  let added: string[] = [];
  const flush = () => {
    for (let i = 0; i < Math.max(removed.length, added.length); i++) rows.push({ left: removed[i] ?? "", right: added[i] ?? "", kind: "change" });
    removed = [];
    added = [];
  };
  for (const line of text.split("\n")) {
    if (line.startsWith("---") || line.startsWith("+++")) continue;
    if (line.startsWith("-")) removed.push(line.slice(1));
    else if (line.startsWith("+")) added.push(line.slice(1));
    else {
      flush();
      if (line.startsWith("@@")) rows.push({ left: line, right: line, kind: "hunk" });
      else if (line) rows.push({ left: line.slice(1), right: line.slice(1), kind: "same" });
    }
  }
  flush();
  return rows;
}

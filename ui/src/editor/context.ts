/** What the editor's forms share: sample context for expressions, the catalog and the connections. */
import { createContext, useContext } from "react";

export type Manifest = {
  name: string;
  title?: unknown;
  description?: string;
  categories?: string[];
  connection?: { kinds?: string[]; schema?: Record<string, any> } | null;
  actions: Record<string, { title?: unknown; description?: string; input_schema?: Record<string, any>; examples?: unknown[] }>;
  triggers?: Record<string, unknown>;
};
export type Connection = { name: string; connector: string; fields?: Record<string, unknown>; secret_fields?: string[] };

export type EditorShared = {
  context: Record<string, unknown>;
  connectors: Record<string, Manifest>;
  connections: Connection[];
};

export const EditorContext = createContext<EditorShared>({ context: {}, connectors: {}, connections: [] });

export function useEditor(): EditorShared {
  return useContext(EditorContext);
}

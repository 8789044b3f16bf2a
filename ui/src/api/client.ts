/** The API client, typed against the service's OpenAPI document (schema.d.ts is generated from it). */
import createClient, { type Middleware } from "openapi-fetch";
import type { paths } from "./schema";

const TOKEN_KEY = "flowlink.token";

export function getToken(): string | null {
  return localStorage.getItem(TOKEN_KEY);
}

export function setToken(token: string | null): void {
  if (token) localStorage.setItem(TOKEN_KEY, token);
  else localStorage.removeItem(TOKEN_KEY);
  window.dispatchEvent(new Event("flowlink:auth"));
}

const auth: Middleware = {
  onRequest({ request }) {
    const token = getToken();
    if (token) request.headers.set("Authorization", `Bearer ${token}`);
    return request;
  },
  onResponse({ response, request }) {
    // an expired session sends the person back to the login page (not for the login call itself)
    if (response.status === 401 && !request.url.endsWith("/api/auth/login")) setToken(null);
    return response;
  },
};

export const api = createClient<paths>({ baseUrl: window.location.origin });
api.use(auth);

/** The API's error envelope: {error: {type, message, issues?, current_version?}}. */
export type ApiError = { type: string; message: string; issues?: { pointer?: string; message: string }[]; current_version?: number; status?: number };

/** Raised by `call` for any non-2xx answer. */
export class ApiFailure extends Error {
  constructor(readonly error: ApiError, readonly status: number) {
    super(error.message);
  }
}

/** Await an openapi-fetch call and return its data, or throw ApiFailure with the API's error envelope. */
export async function call<T = any>(pending: Promise<{ data?: unknown; error?: unknown; response: Response }>): Promise<T> {
  let result;
  try {
    result = await pending;
  } catch (err) {
    throw new ApiFailure({ type: "Network", message: String(err) }, 0);
  }
  if (result.response.ok) return result.data as T;
  const body = result.error as { error?: ApiError } | undefined;
  throw new ApiFailure(body?.error ?? { type: "HTTPError", message: result.response.statusText }, result.response.status);
}

/** Authenticated fetch for what openapi-fetch does not parse (file downloads). */
export async function rawFetch(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  const token = getToken();
  if (token) headers.set("Authorization", `Bearer ${token}`);
  return fetch(path, { ...init, headers });
}

/**
 * Calls to the server: every data call carries `Authorization: Bearer <token>` when the user entered one
 * (kept in sessionStorage, so it ends with the tab), and a refusal becomes an ApiError with the server's
 * own message, which the views show as it is.
 */

const TOKEN_KEY = 'tensorgate.token';

export function getToken(): string {
  return sessionStorage.getItem(TOKEN_KEY) ?? '';
}

export function setToken(token: string): void {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }

  /** "401 Unauthorized: <the server's message>", with a hint about the token box for 401/403. */
  describe(): string {
    const hint = this.status === 401 ? ' (enter an API token above)' : this.status === 403 ? ' (the token lacks this permission)' : '';
    return `${this.status || 'network'}: ${this.message}${hint}`;
  }
}

function headers(extra: Record<string, string> = {}): Record<string, string> {
  const token = getToken();
  return { ...extra, ...(token ? { authorization: `Bearer ${token}` } : {}) };
}

/** The message of an error answer: {"error": "..."} (v2, console) or {"error": {"message"}} (OpenAI API). */
async function errorOf(res: Response): Promise<ApiError> {
  const text = await res.text().catch(() => '');
  let message = text.slice(0, 1000) || res.statusText;
  try {
    const body = JSON.parse(text) as { error?: string | { message?: string } };
    if (typeof body.error === 'string') message = body.error;
    else if (typeof body.error?.message === 'string') message = body.error.message;
  } catch {
    // not JSON: the text itself
  }
  return new ApiError(res.status, message);
}

/** fetch with the token; throws ApiError for a non-2xx answer or a network failure. */
export async function call(path: string, init: RequestInit & { json?: unknown } = {}): Promise<Response> {
  const { json, ...rest } = init;
  let res: Response;
  try {
    res = await fetch(path, {
      ...rest,
      headers: headers(json !== undefined ? { 'content-type': 'application/json' } : {}),
      ...(json !== undefined ? { body: JSON.stringify(json) } : {}),
    });
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err;
    throw new ApiError(0, `the server could not be reached: ${(err as Error).message}`);
  }
  if (!res.ok) throw await errorOf(res);
  return res;
}

export async function getJson<T>(path: string, init: RequestInit = {}): Promise<T> {
  return (await call(path, init)).json() as Promise<T>;
}

export async function postJson<T>(path: string, body: unknown, init: RequestInit = {}): Promise<T> {
  return (await call(path, { ...init, method: 'POST', json: body })).json() as Promise<T>;
}

/** An error as one line for the page. */
export function describeError(err: unknown): string {
  return err instanceof ApiError ? err.describe() : err instanceof Error ? err.message : String(err);
}

/** The master's admin API as the status page uses it: the token in a header, never in a URL. */

const TOKEN_KEY = 'tabreduce.adminToken';

/** The master answered 401: the token is missing or wrong. */
export class TokenRefusedError extends Error {
  override name = 'TokenRefusedError';
}

/**
 * No answer at all (the master is down, or the network): what the browser says then ("Failed to
 * fetch", "NetworkError when attempting to fetch resource") tells an admin nothing.
 */
export class UnreachableError extends Error {
  override name = 'UnreachableError';
  constructor() {
    super('master unreachable');
  }
}

export function savedToken(): string | null {
  try {
    return localStorage.getItem(TOKEN_KEY);
  } catch {
    // Storage can be disabled (private mode, policy); the page still works for this visit.
    return null;
  }
}

export function saveToken(token: string | null): void {
  try {
    if (token === null) localStorage.removeItem(TOKEN_KEY);
    else localStorage.setItem(TOKEN_KEY, token);
  } catch {
    // see savedToken
  }
}

export async function apiFetch(token: string, path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  headers.set('authorization', `Bearer ${token}`);
  let res: Response;
  try {
    res = await fetch(path, { ...init, headers, cache: 'no-store' });
  } catch (e) {
    if (init.signal?.aborted) throw e;
    throw new UnreachableError();
  }
  if (res.status === 401) throw new TokenRefusedError('the master refused this token');
  if (!res.ok) {
    let message = `HTTP ${res.status}`;
    try {
      message = ((await res.json()) as { error?: string }).error ?? message;
    } catch {
      // not JSON: keep the status
    }
    throw new Error(message);
  }
  return res;
}

export async function apiJson<T>(token: string, path: string, init?: RequestInit): Promise<T> {
  return (await (await apiFetch(token, path, init)).json()) as T;
}

/**
 * Saves a job's output. A plain link cannot carry the Authorization header, so the page fetches
 * the text with the token and hands the browser a Blob to save.
 */
export async function downloadOutput(token: string, jobId: string, fileName: string): Promise<void> {
  const blob = await (await apiFetch(token, `/api/jobs/${encodeURIComponent(jobId)}/output`)).blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = fileName;
  document.body.append(a);
  a.click();
  a.remove();
  // The click starts the download synchronously; the URL can go once the event loop turns.
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

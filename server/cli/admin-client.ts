import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { UserError, toError } from '../../shared/errors.js';
import { TASKS_HEADERS, TASKS_PAGE_LIMIT, type TaskView } from '../../shared/api.js';

export const DEFAULT_SERVER = 'http://127.0.0.1:8080';

/** A failure talking to the master (unreachable, refused token, server error): exit code 3. */
export class MasterError extends Error {
  override name = 'MasterError';
}

/** The master did not answer at all (not running, wrong address, network): also exit code 3. */
export class MasterUnreachableError extends MasterError {
  override name = 'MasterUnreachableError';
}

export interface AdminTarget {
  server: string;
  token: string | undefined;
  /** Where the token came from, for the hint when the master refuses it. */
  tokenFrom?: string;
}

/** --token, else TABREDUCE_TOKEN, else ./data/admin-token when readable; and which it was. */
export function resolveToken(flag: string | undefined): { token: string | undefined; from?: string } {
  if (flag) return { token: flag, from: '--token' };
  const env = process.env['TABREDUCE_TOKEN'];
  if (env) return { token: env, from: 'TABREDUCE_TOKEN' };
  const file = './data/admin-token';
  if (existsSync(file)) {
    try {
      return { token: readFileSync(file, 'utf8').trim(), from: resolve(file) };
    } catch {
      return { token: undefined };
    }
  }
  return { token: undefined };
}

export function resolveServer(flag: string | undefined): string {
  const server = flag ?? process.env['TABREDUCE_URL'] ?? DEFAULT_SERVER;
  try {
    const u = new URL(server);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not http');
  } catch {
    throw new UserError(`--server must be an http:// or https:// URL, got ${JSON.stringify(server)}`);
  }
  return server.replace(/\/+$/, '');
}

/** Calls the master's API; turns every way it can go wrong into an error that says what to do. */
export async function api(t: AdminTarget, path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  if (t.token) headers.set('authorization', `Bearer ${t.token}`);
  let res: Response;
  try {
    res = await fetch(`${t.server}${path}`, { ...init, headers });
  } catch (e) {
    const cause = (toError(e) as Error & { cause?: { code?: string; message?: string } }).cause;
    const why = cause?.code ?? cause?.message ?? toError(e).message;
    throw new MasterUnreachableError(
      `cannot reach the master at ${t.server} (${why}). Is it running? Start one with \`npm start\` or \`tabreduce serve\`, or point at it with --server / TABREDUCE_URL.`,
    );
  }
  if (res.ok) return res;
  let message = `HTTP ${res.status}`;
  try {
    const body = (await res.json()) as { error?: string };
    if (body.error) message = body.error;
  } catch {
    // not JSON: keep the status
  }
  if (res.status === 401) {
    throw new MasterError(
      t.token
        ? `the master refused the admin token${t.tokenFrom ? ` from ${t.tokenFrom}` : ''}. Its own is in the file named on the "admin token:" line it printed at start (DATA/admin-token, DATA being its --data directory, ./data by default), or is the TABREDUCE_TOKEN it was started with: pass that with --token or TABREDUCE_TOKEN.`
        : `no admin token: pass --token, set TABREDUCE_TOKEN, or run from the directory whose data/admin-token the master created (the master prints its path on the "admin token:" line at start).`,
    );
  }
  if (res.status >= 500) throw new MasterError(`the master failed: ${message}`);
  if (res.status === 404 && path.startsWith('/api/jobs/')) {
    throw new UserError(`${message} on ${t.server}; \`tabreduce status\` lists its jobs`);
  }
  throw new UserError(message);
}

export async function apiJson<T>(t: AdminTarget, path: string, init?: RequestInit): Promise<T> {
  return (await (await api(t, path, init)).json()) as T;
}

/** Every task of a job, a page at a time, following `X-Next-After` (README "HTTP API"). */
export async function fetchAllTasks(t: AdminTarget, jobId: string): Promise<TaskView[]> {
  const tasks: TaskView[] = [];
  for (let after: string | null = '0'; after !== null;) {
    const res = await api(t, `/api/jobs/${encodeURIComponent(jobId)}/tasks?after=${after}&limit=${TASKS_PAGE_LIMIT}`);
    for (const task of (await res.json()) as TaskView[]) tasks.push(task);
    after = res.headers.get(TASKS_HEADERS.nextAfter);
  }
  return tasks;
}

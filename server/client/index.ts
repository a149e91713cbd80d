/**
 * `tabreduce/client`: the master's HTTP API (README "HTTP API") from Node, typed. The CLI's admin
 * commands are built on it, so a script sees what `tabreduce submit`, `status`, `wait` and `result`
 * see.
 *
 *   const tr = new Tabreduce({ server: 'http://127.0.0.1:8080', token });
 *   const id = await tr.submit({ module: 'word-count.ts', inputs: ['books/a.txt'] });
 *   for await (const job of tr.wait(id)) console.log(job.state, job.maps.done);
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { Readable } from 'node:stream';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import { UserError, toError } from '../../shared/errors.js';
import {
  TASKS_HEADERS,
  TASKS_PAGE_LIMIT,
  type DeletedJob,
  type JobSummary,
  type JobView,
  type TaskView,
  type WorkerView,
} from '../../shared/api.js';
import { isJobFinished, type VerifyMode } from '../../shared/states.js';
import { loadJobSource } from '../cli/bundle.js';
import { checkReadable } from '../cli/files.js';
import { checkSpec, inputKeys, JOB_DEFAULTS } from '../submit-job.js';
import { multipartBody, type Part } from './multipart.js';

export type { DeletedJob, JobSummary, JobView, TaskView, WorkerView } from '../../shared/api.js';
export type { JobState } from '../../shared/states.js';
export { UserError } from '../../shared/errors.js';

export const DEFAULT_SERVER = 'http://127.0.0.1:8080';

/**
 * The master answered with an error (`status`, and its own message as the message), or did not
 * answer at all (`status` null, MasterUnreachableError).
 */
export class TabreduceError extends Error {
  override name = 'TabreduceError';
  constructor(
    message: string,
    /** The HTTP status, or null when the master was not reached. */
    readonly status: number | null,
    /** The master's address. */
    readonly server: string,
    /** The API path of the request, e.g. `/api/jobs/01J…`. */
    readonly path: string,
  ) {
    super(message);
  }
}

/** The master could not be reached: not running, a wrong address, the network. */
export class MasterUnreachableError extends TabreduceError {
  override name = 'MasterUnreachableError';
  constructor(
    server: string,
    path: string,
    /** What the connection attempt said (`ECONNREFUSED`, `ENOTFOUND`, …). */
    readonly reason: string,
  ) {
    super(`cannot reach the master at ${server} (${reason})`, null, server, path);
  }
}

/** The master refused the admin token (HTTP 401), or none was given. */
export class TokenRefusedError extends TabreduceError {
  override name = 'TokenRefusedError';
  constructor(
    server: string,
    path: string,
    /** Whether a token was sent at all. */
    readonly tokenSent: boolean,
  ) {
    super(
      tokenSent ? `the master at ${server} refused the admin token` : `no admin token for the master at ${server}`,
      401,
      server,
      path,
    );
  }
}

/** TABREDUCE_URL, else the master's default address. */
export function defaultServer(): string {
  return process.env['TABREDUCE_URL'] || DEFAULT_SERVER;
}

/** TABREDUCE_TOKEN, else ./data/admin-token when readable (a master started here keeps it there); and which. */
export function defaultToken(): { token: string | undefined; from?: string } {
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

export interface TabreduceOptions {
  /** The master's URL; default TABREDUCE_URL, else http://127.0.0.1:8080. */
  server?: string;
  /** The admin token; default TABREDUCE_TOKEN, else ./data/admin-token. */
  token?: string;
}

/** An input's bytes: text, bytes, or a stream of bytes read as the upload goes out. */
export type InputData = string | Uint8Array | Readable | ReadableStream<Uint8Array>;

export interface SubmitOptions {
  /** The job module: a file (bundled as `tabreduce submit` bundles it), or its name and source as sent. */
  module: string | { name: string; source: string };
  /** Bundle a module given as a path with what it imports (default true); false sends the file as it is. */
  bundle?: boolean;
  /** Input files by path, or named data; each name (a path's base name) is a map key, so unique. */
  inputs: (string | { name: string; data: InputData })[];
  /** The job's name; default the module's. */
  name?: string;
  reduces?: number;
  splitSize?: number;
  taskTimeoutMs?: number;
  maxAttempts?: number;
  /** How results are checked against volunteers that lie (default `adaptive`; README "Verification"). */
  verify?: VerifyMode;
  /**
   * Lines whose `map` throws that the job may skip and report rather than fail (default 0; the
   * module must declare `export const records = 'lines'`).
   */
  skipBadRecords?: number;
}

export interface WaitOptions {
  /** How often the master is asked (default 500 ms). */
  intervalMs?: number;
  /** Stops waiting (not the job); the iterator then throws the signal's reason. */
  signal?: AbortSignal;
}

const POLL_MS = 500;

export class Tabreduce {
  readonly server: string;
  readonly #token: string | undefined;

  constructor(opts: TabreduceOptions = {}) {
    const server = opts.server ?? defaultServer();
    let u: URL | null = null;
    try {
      u = new URL(server);
    } catch {
      // refused below
    }
    if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:'))
      throw new UserError(`server must be an http:// or https:// URL, got ${JSON.stringify(server)}`);
    this.server = server.replace(/\/+$/, '');
    this.#token = opts.token ?? defaultToken().token;
  }

  /**
   * One request to the master. Every way it can go wrong is a TabreduceError: MasterUnreachableError
   * when nothing answered, TokenRefusedError on 401, else the status and the master's message.
   */
  async request(path: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.#token) headers.set('authorization', `Bearer ${this.#token}`);
    let res: Response;
    try {
      res = await fetch(`${this.server}${path}`, { ...init, headers });
    } catch (e) {
      const err = toError(e) as Error & { cause?: { code?: string; message?: string } };
      if (err.name === 'AbortError') throw err;
      throw new MasterUnreachableError(this.server, path, err.cause?.code ?? err.cause?.message ?? err.message);
    }
    if (res.ok) return res;
    let message = `HTTP ${res.status}`;
    try {
      const body = (await res.json()) as { error?: string };
      if (body.error) message = body.error;
    } catch {
      // not JSON: keep the status
    }
    if (res.status === 401) throw new TokenRefusedError(this.server, path, this.#token !== undefined);
    throw new TabreduceError(message, res.status, this.server, path);
  }

  async #json<T>(path: string, init?: RequestInit): Promise<T> {
    return (await (await this.request(path, init)).json()) as T;
  }

  /**
   * Uploads a job and returns its id. Everything that can be checked here is (the spec, the module,
   * the inputs' names and readability) before a byte is sent; inputs are streamed, never read whole.
   */
  async submit(opts: SubmitOptions): Promise<string> {
    const spec = {
      reduces: opts.reduces ?? JOB_DEFAULTS.reduces,
      splitSize: opts.splitSize ?? JOB_DEFAULTS.splitSize,
      taskTimeoutMs: opts.taskTimeoutMs ?? JOB_DEFAULTS.taskTimeoutMs,
      maxAttempts: opts.maxAttempts ?? JOB_DEFAULTS.maxAttempts,
      verify: opts.verify ?? JOB_DEFAULTS.verify,
      skipBadRecords: opts.skipBadRecords ?? JOB_DEFAULTS.skipBadRecords,
    };
    checkSpec(spec);
    const module =
      typeof opts.module === 'string'
        ? await loadJobSource(opts.module, { bundle: opts.bundle !== false })
        : opts.module;
    if (opts.inputs.length === 0) throw new UserError('no inputs: a job needs at least one');
    inputKeys(opts.inputs.map((i) => (typeof i === 'string' ? i : i.name)));
    for (const i of opts.inputs) if (typeof i === 'string') await checkReadable(i, 'input file');

    // Fields first: the master then splits each input while it streams in, instead of reading it again.
    const parts: Part[] = [];
    const field = (name: string, value: string) => parts.push({ kind: 'field', name, value });
    if (opts.name !== undefined) field('name', opts.name);
    field('reduces', String(spec.reduces));
    field('splitSize', String(spec.splitSize));
    field('taskTimeoutMs', String(spec.taskTimeoutMs));
    field('maxAttempts', String(spec.maxAttempts));
    field('verify', spec.verify);
    if (spec.skipBadRecords !== 0) field('skipBadRecords', String(spec.skipBadRecords));
    parts.push({ kind: 'file', name: 'module', filename: module.name, type: 'text/javascript', data: module.source });
    for (const i of opts.inputs) {
      const file =
        typeof i === 'string' ? { filename: basename(i), data: { path: i } } : { filename: i.name, data: i.data };
      parts.push({ kind: 'file', name: 'input', type: 'application/octet-stream', ...file });
    }
    const { body, contentType } = multipartBody(parts);
    const { id } = await this.#json<{ id: string }>('/api/jobs', {
      method: 'POST',
      headers: { 'content-type': contentType },
      body,
      // Node's fetch sends a stream only as it is read, which it must be told.
      duplex: 'half',
    } as RequestInit);
    return id;
  }

  /** A job as it is now. */
  job(id: string): Promise<JobView> {
    return this.#json<JobView>(`/api/jobs/${encodeURIComponent(id)}`);
  }

  /** Every job, newest first. */
  jobs(): Promise<JobView[]> {
    return this.#json<JobView[]>('/api/jobs');
  }

  /** What a job's attempts add up to, counted by the master. */
  summary(id: string): Promise<JobSummary> {
    return this.#json<JobSummary>(`/api/jobs/${encodeURIComponent(id)}/summary`);
  }

  /** Every task of a job with its attempts, fetched a page at a time. */
  async tasks(id: string): Promise<TaskView[]> {
    const tasks: TaskView[] = [];
    for (let after: string | null = '0'; after !== null;) {
      const res = await this.request(
        `/api/jobs/${encodeURIComponent(id)}/tasks?after=${after}&limit=${TASKS_PAGE_LIMIT}`,
      );
      for (const task of (await res.json()) as TaskView[]) tasks.push(task);
      after = res.headers.get(TASKS_HEADERS.nextAfter);
    }
    return tasks;
  }

  /**
   * The job's progress until it ends: a snapshot whenever it changed (the first at once), the last one
   * finished (succeeded, failed or cancelled). Ending the loop early stops waiting, not the job.
   */
  async *wait(id: string, opts: WaitOptions = {}): AsyncGenerator<JobView, JobView, undefined> {
    const interval = opts.intervalMs ?? POLL_MS;
    let last = '';
    for (;;) {
      opts.signal?.throwIfAborted();
      const job = await this.job(id);
      const text = JSON.stringify(job);
      if (text !== last) {
        last = text;
        yield job;
      }
      if (isJobFinished(job.state)) return job;
      await new Promise<void>((ok) => {
        const timer = setTimeout(ok, interval);
        opts.signal?.addEventListener('abort', () => (clearTimeout(timer), ok()), { once: true });
      });
    }
  }

  /** Resolves with the job once it has finished, whichever way. */
  async finished(id: string, opts: WaitOptions = {}): Promise<JobView> {
    let job: JobView | undefined;
    for await (job of this.wait(id, opts));
    return job!;
  }

  /**
   * A succeeded job's output: every partition in order, or one with `partition`. The master
   * refuses (400) a job that has not succeeded.
   */
  async result(id: string, opts: { partition?: number } = {}): Promise<Readable> {
    const query = opts.partition === undefined ? '' : `?partition=${opts.partition}`;
    const res = await this.request(`/api/jobs/${encodeURIComponent(id)}/output${query}`);
    return Readable.fromWeb(res.body! as NodeReadableStream<Uint8Array>);
  }

  /** Cancels a job; returns it as it then is. */
  cancel(id: string): Promise<JobView> {
    return this.#json<JobView>(`/api/jobs/${encodeURIComponent(id)}/cancel`, { method: 'POST' });
  }

  /** Deletes a job that has ended, with everything it stored. */
  delete(id: string): Promise<DeletedJob> {
    return this.#json<DeletedJob>(`/api/jobs/${encodeURIComponent(id)}`, { method: 'DELETE' });
  }

  /** The volunteers the master knows of, recently disconnected ones included. */
  workers(): Promise<WorkerView[]> {
    return this.#json<WorkerView[]>('/api/workers');
  }
}

/**
 * The status page's live view of the master: jobs, volunteers and throughput, kept current by the
 * `/api/events` stream. One instance per page; components read its fields, which are runes.
 */
import { volunteerNamer } from './format.js';
import type { JobView, ThroughputSample, WorkerView } from '../../shared/api.js';
import { SseParser, type SseEvent } from './sse.js';
import { TokenRefusedError, UnreachableError, apiFetch, apiJson, saveToken, savedToken } from './api.js';
import { mergeSamples } from './samples.js';

export type ConnectionState = 'signed-out' | 'connecting' | 'live' | 'reconnecting';

/** The master writes at least every second (throughput); silence this long means a dead stream. */
const STALL_MS = 5_000;
const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 5_000;

function newestFirst(a: JobView, b: JobView): number {
  return b.createdAt - a.createdAt || (a.id < b.id ? 1 : -1);
}

export class LiveState {
  token = $state<string | null>(null);
  connection = $state<ConnectionState>('signed-out');
  /** Why the page is asking for a token, or why the stream is down. */
  problem = $state<string | null>(null);
  // Whole values are replaced on every update, so deep reactivity would only cost proxies.
  jobs = $state.raw<JobView[]>([]);
  workers = $state.raw<WorkerView[]>([]);
  /** A volunteer as the pages name it: the name its visitor chose, else the start of its id. */
  nameOf = $derived(volunteerNamer(this.workers));
  throughput = $state.raw<ThroughputSample[]>([]);
  /** The page's clock, ticking every second, for elapsed times, ages and running bars. */
  now = $state(Date.now());
  /** When the stream last brought news; what the page shows is as of then while it is down. */
  heardAt = $state(Date.now());

  private stop: AbortController | null = null;

  constructor() {
    setInterval(() => (this.now = Date.now()), 1000);
    const token = savedToken();
    if (token) this.start(token);
  }

  /** Checks a token typed by the admin; on success keeps it and goes live. */
  async signIn(token: string): Promise<void> {
    try {
      await apiJson(token, '/api/workers');
    } catch (e) {
      if (e instanceof TokenRefusedError) {
        this.problem =
          'The master refused this token. Its own is in the file named on the "admin token:" line it printed at start.';
      } else if (e instanceof UnreachableError) {
        this.problem = `Cannot reach the master at ${location.origin}: is it running?`;
      } else {
        this.problem = `The master could not check the token: ${e instanceof Error ? e.message : String(e)}`;
      }
      return;
    }
    saveToken(token);
    this.start(token);
  }

  signOut(reason: string | null = null): void {
    this.stop?.abort();
    this.stop = null;
    saveToken(null);
    this.token = null;
    this.connection = 'signed-out';
    this.problem = reason;
    this.jobs = [];
    this.workers = [];
    this.throughput = [];
  }

  job(id: string): JobView | undefined {
    return this.jobs.find((j) => j.id === id);
  }

  private start(token: string): void {
    this.stop?.abort();
    this.stop = new AbortController();
    this.token = token;
    this.problem = null;
    this.connection = 'connecting';
    void this.run(token, this.stop.signal);
  }

  private async run(token: string, signal: AbortSignal): Promise<void> {
    let delay = RETRY_MIN_MS;
    while (!signal.aborted) {
      const attempt = new AbortController();
      const abort = () => attempt.abort();
      signal.addEventListener('abort', abort);
      let lastData = Date.now();
      const watchdog = setInterval(() => {
        if (Date.now() - lastData > STALL_MS) attempt.abort();
      }, 1000);
      try {
        const res = await apiFetch(token, '/api/events', {
          signal: attempt.signal,
          headers: { accept: 'text/event-stream' },
        });
        this.connection = 'live';
        this.problem = null;
        this.heardAt = Date.now();
        delay = RETRY_MIN_MS;
        const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
        const parser = new SseParser();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          lastData = Date.now();
          this.heardAt = lastData;
          for (const e of parser.push(value)) this.apply(e);
        }
        this.problem = 'The master closed the event stream.';
      } catch (e) {
        if (signal.aborted) return;
        if (e instanceof TokenRefusedError) {
          this.signOut('The master refused the saved token; it may have a new one. Enter the current token.');
          return;
        }
        // What the browser says of a dropped stream ("network error", "Failed to fetch") is no help.
        this.problem = attempt.signal.aborted ? 'no news from the master for a while' : null;
      } finally {
        clearInterval(watchdog);
        signal.removeEventListener('abort', abort);
      }
      if (signal.aborted) return;
      this.connection = 'reconnecting';
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, RETRY_MAX_MS);
    }
  }

  private apply(e: SseEvent): void {
    switch (e.event) {
      case 'jobs':
        this.jobs = (JSON.parse(e.data) as JobView[]).sort(newestFirst);
        return;
      case 'job': {
        const job = JSON.parse(e.data) as JobView;
        const i = this.jobs.findIndex((j) => j.id === job.id);
        const next = this.jobs.slice();
        if (i === -1) {
          next.push(job);
          next.sort(newestFirst);
        } else {
          next[i] = job;
        }
        this.jobs = next;
        return;
      }
      case 'deleted': {
        const { id } = JSON.parse(e.data) as { id: string };
        this.jobs = this.jobs.filter((j) => j.id !== id);
        return;
      }
      case 'workers':
        this.workers = JSON.parse(e.data) as WorkerView[];
        return;
      case 'throughput':
        this.throughput = mergeSamples(this.throughput, JSON.parse(e.data) as ThroughputSample[]);
        return;
    }
  }
}

export const live = new LiveState();

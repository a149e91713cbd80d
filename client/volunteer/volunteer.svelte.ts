/**
 * The page's view of its volunteer: starts the session worker, mirrors its snapshots into Svelte
 * state, and forwards the visitor's pause and threads choices.
 */
import { proxy, wrap, type Remote } from 'comlink';
import { claimIdentity } from './identity.js';
import { MAX_THREADS, savePaused, sessionStore, threadsUrl, type TabSettings } from './settings.js';
import { initialSnapshot, type Identity, type SessionWorkerApi, type TabSnapshot } from './wire.js';

export class VolunteerTab {
  snapshot: TabSnapshot = $state(initialSnapshot());
  /** When the last snapshot arrived, to count processor time on between snapshots. */
  receivedAt = $state(Date.now());
  /** The page's clock, ticking for countdowns and elapsed times. */
  now = $state(Date.now());
  /** Set when this browser cannot run the volunteer at all. */
  fatal: string | null = $state(null);
  readonly cores: number;
  readonly host: string;
  private api: Remote<SessionWorkerApi> | null = null;
  /** The visitor's choices until a snapshot reflects them. */
  private readonly wanted: { paused: boolean | null; threads: number | null } = { paused: null, threads: null };

  constructor(private readonly settings: TabSettings) {
    this.cores = settings.cores;
    this.host = location.host;
    this.snapshot.threads = settings.threads;
    this.snapshot.paused = settings.paused;
    // Twice a second: countdowns and elapsed times stay within half a second of the truth.
    setInterval(() => (this.now = Date.now()), 500);
  }

  get maxThreads(): number {
    return Math.min(MAX_THREADS, Math.max(this.cores, this.snapshot.threads));
  }

  /** Seconds until the next reconnection attempt, while reconnecting. */
  get retryInSeconds(): number | null {
    const s = this.snapshot;
    if (s.state !== 'reconnecting' || s.retryAt === null) return null;
    return Math.max(0, Math.ceil((s.retryAt - this.now) / 1000));
  }

  /** Processor time given, counting on between snapshots for the tasks still running. */
  get computeMs(): number {
    const s = this.snapshot;
    return s.computeMs + Math.max(0, this.now - this.receivedAt) * s.computing.length;
  }

  async start(): Promise<void> {
    if (typeof Worker !== 'function' || typeof WebSocket !== 'function') {
      this.fatal = 'This browser cannot run background workers, so it cannot volunteer. Any recent browser can.';
      return;
    }
    const ids = await claimIdentity(sessionStore());
    const worker = new Worker(new URL('./session-worker.ts', import.meta.url), {
      type: 'module',
      name: 'tabreduce volunteer',
    });
    worker.addEventListener('error', (ev) => {
      ev.preventDefault();
      this.fatal = `The volunteer could not start in this browser (${ev.message || 'its worker failed to load'}).`;
    });
    this.api = wrap<SessionWorkerApi>(worker);
    const ws = new URL('/ws', location.href);
    ws.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
    await this.api.start(
      {
        url: ws.toString(),
        threads: this.settings.threads,
        prefetch: this.settings.prefetch,
        paused: this.settings.paused,
        agent: `tab ${navigator.userAgent}`.slice(0, 300),
        identity: ids.identity,
      },
      proxy((s: TabSnapshot) => this.receive(s)),
      proxy((id: Identity) => ids.save(id)),
    );
  }

  /**
   * A snapshot from the session worker. One sent before the worker saw the visitor's latest click
   * would undo it on screen for a moment, so choices it does not reflect yet stay as chosen.
   */
  private receive(s: TabSnapshot): void {
    if (this.wanted.paused !== null) {
      if (s.paused === this.wanted.paused) this.wanted.paused = null;
      else s.paused = this.wanted.paused;
    }
    if (this.wanted.threads !== null) {
      if (s.threads === this.wanted.threads) this.wanted.threads = null;
      else s.threads = this.wanted.threads;
    }
    this.snapshot = s;
    this.receivedAt = Date.now();
  }

  setPaused(paused: boolean): void {
    this.wanted.paused = paused;
    this.snapshot.paused = paused;
    savePaused(sessionStore(), paused);
    void this.api?.setPaused(paused);
  }

  setThreads(n: number): void {
    const threads = Math.max(1, Math.min(this.maxThreads, Math.round(n)));
    if (threads === this.snapshot.threads) return;
    this.wanted.threads = threads;
    this.snapshot.threads = threads;
    history.replaceState(history.state, '', threadsUrl(location.href, threads));
    void this.api?.setThreads(threads);
  }
}

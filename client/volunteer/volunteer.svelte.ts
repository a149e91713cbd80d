/**
 * The page's view of its volunteer: starts the session worker, mirrors its snapshots into Svelte
 * state, and forwards the visitor's choices: pause, threads, name, and the rules that pause the tab
 * by themselves (while it is hidden, while on battery).
 */
import { proxy, wrap, type Remote } from 'comlink';
import { cleanVolunteerName } from '../../shared/volunteer-label.js';
import { claimIdentity } from './identity.js';
import {
  MAX_THREADS,
  localStore,
  readComputeMs,
  readName,
  readRules,
  saveComputeMs,
  saveName,
  savePaused,
  saveRules,
  sessionStore,
  threadsUrl,
  type Rules,
  type TabSettings,
} from './settings.js';
import { initialSnapshot, type Identity, type SessionWorkerApi, type TabSnapshot } from './wire.js';
import type { PausedBy } from './view.js';

/** The part of the Battery Status API the page uses (Chromium has it; Firefox and Safari do not). */
interface BatteryLike extends EventTarget {
  charging: boolean;
}

export class VolunteerTab {
  snapshot: TabSnapshot = $state(initialSnapshot());
  /** When the last snapshot arrived, to count processor time on between snapshots. */
  receivedAt = $state(Date.now());
  /** The page's clock, ticking for countdowns and elapsed times. */
  now = $state(Date.now());
  /** Set when this browser cannot run the volunteer at all. */
  fatal: string | null = $state(null);
  /** The visitor's own pause (the button); the tab may also be paused by a rule. */
  userPaused = $state(false);
  /** The name shown on the status page, as the master keeps it ('' for none). */
  name = $state('');
  rules = $state<Rules>({ visibleOnly: false, pauseOnBattery: false });
  hidden = $state(false);
  /** Whether the browser tells about the battery; the setting shows only where it does. */
  batteryKnown = $state(false);
  onBattery = $state(false);
  /** Processor time of earlier pages of this tab, for the identity `computeFor`. */
  private computeBase = 0;
  private computeFor: string | null = null;
  readonly cores: number;
  readonly host: string;
  private api: Remote<SessionWorkerApi> | null = null;
  /** The visitor's choices until a snapshot reflects them. */
  private readonly wanted: { paused: boolean | null; threads: number | null } = { paused: null, threads: null };

  constructor(private readonly settings: TabSettings) {
    this.cores = settings.cores;
    this.host = location.host;
    this.snapshot.threads = settings.threads;
    this.userPaused = settings.paused;
    this.name = readName(localStore());
    this.rules = readRules(localStore());
    this.hidden = document.visibilityState === 'hidden';
    this.snapshot.paused = this.shouldPause;
    document.addEventListener('visibilitychange', () => {
      this.hidden = document.visibilityState === 'hidden';
      this.sync();
    });
    void this.watchBattery();
    // Twice a second: countdowns and elapsed times stay within half a second of the truth.
    setInterval(() => (this.now = Date.now()), 500);
  }

  private async watchBattery(): Promise<void> {
    const nav = navigator as Navigator & { getBattery?: () => Promise<BatteryLike> };
    if (typeof nav.getBattery !== 'function') return;
    try {
      const battery = await nav.getBattery();
      this.batteryKnown = true;
      this.onBattery = !battery.charging;
      battery.addEventListener('chargingchange', () => {
        this.onBattery = !battery.charging;
        this.sync();
      });
      this.sync();
    } catch {
      // Refused (a permissions policy): as if the browser had no such API.
    }
  }

  /** Why the tab is paused, if it should be. */
  get pausedBy(): PausedBy {
    if (this.userPaused) return 'you';
    if (this.rules.visibleOnly && this.hidden) return 'hidden';
    if (this.rules.pauseOnBattery && this.batteryKnown && this.onBattery) return 'battery';
    return null;
  }

  get shouldPause(): boolean {
    return this.pausedBy !== null;
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
    return this.computeBase + s.computeMs + Math.max(0, this.now - this.receivedAt) * s.computing.length;
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
        paused: this.shouldPause,
        agent: `tab ${navigator.userAgent}`.slice(0, 300),
        name: this.name,
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
    if (s.volunteerId && s.volunteerId !== this.computeFor) {
      this.computeFor = s.volunteerId;
      this.computeBase = readComputeMs(sessionStore(), s.volunteerId);
    }
    if (this.computeFor) saveComputeMs(sessionStore(), this.computeFor, this.computeBase + s.computeMs);
    this.snapshot = s;
    this.receivedAt = Date.now();
  }

  /** The visitor's pause button. */
  setPaused(paused: boolean): void {
    this.userPaused = paused;
    savePaused(sessionStore(), paused);
    this.sync();
  }

  setRules(rules: Rules): void {
    this.rules = rules;
    saveRules(localStore(), rules);
    this.sync();
  }

  /** Keeps the name as the master will (cleaned, cut), for this browser, and tells the master. */
  setName(raw: string): void {
    const name = cleanVolunteerName(raw);
    this.name = name;
    saveName(localStore(), name);
    void this.api?.setName(name);
  }

  /** Tells the session whether to pause, when the button or a rule changed that. */
  private sync(): void {
    const paused = this.shouldPause;
    if (paused === (this.wanted.paused ?? this.snapshot.paused)) return;
    this.wanted.paused = paused;
    this.snapshot.paused = paused;
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

/**
 * The tab's volunteer: the shared VolunteerSession (socket, heartbeats, reconnects, results kept until
 * acknowledged) and a WorkerPool of job workers, run in a dedicated worker of their own.
 *
 * Why not on the page: Chrome throttles a page hidden for 5 minutes to one timer wake-up per minute
 * ("intensive wake-up throttling", Chrome 88+), which would stretch the 2 s heartbeat past the
 * master's 10 s rule and get a background tab declared gone. Timers in workers are not throttled.
 * It also keeps parsing multi-megabyte task messages off the thread that draws the page.
 */
import { expose } from 'comlink';
import { VolunteerSession, type SessionSnapshot, type SocketLike } from '../../shared/volunteer-session.js';
import { WorkerPool } from '../../shared/worker-pool.js';
import { createWebPoolWorker } from './pool-worker.js';
import type { Identity, SessionConfig, SessionWorkerApi, TabSnapshot } from './wire.js';

/** Snapshots go to the page at most this often: enough for the eye, cheap with hundreds of tasks a second. */
const PUSH_EVERY_MS = 200;

let session: VolunteerSession | null = null;
let pool: WorkerPool | null = null;

const api: SessionWorkerApi = {
  start(config: SessionConfig, onChange: (s: TabSnapshot) => void, saveIdentity: (id: Identity) => void) {
    if (session) return;
    /** Leases in a job worker now, and since when. */
    const computing = new Map<string, number>();
    let computedMs = 0;
    let timer: ReturnType<typeof setTimeout> | null = null;
    // The session says "retry in N ms" when it schedules a reconnect; the page needs when that is.
    let retryAt: number | null = null;
    let lastRetry: number | null = null;
    const noteRetry = (s: SessionSnapshot) => {
      const retry = s.state === 'reconnecting' ? s.retryInMs : null;
      if (retry !== lastRetry) retryAt = retry === null ? null : Date.now() + retry;
      lastRetry = retry;
    };
    const push = () => {
      if (timer) return;
      timer = setTimeout(() => {
        timer = null;
        if (!session) return;
        const now = Date.now();
        let computeMs = computedMs;
        for (const since of computing.values()) computeMs += now - since;
        void onChange({ ...session.snapshot(), computing: [...computing.keys()], computeMs, retryAt });
      }, PUSH_EVERY_MS);
    };
    pool = new WorkerPool(
      createWebPoolWorker,
      config.threads,
      (e) => {
        if (e.kind === 'start') {
          computing.set(e.lease, Date.now());
        } else {
          computedMs += Date.now() - (computing.get(e.lease) ?? Date.now());
          computing.delete(e.lease);
        }
        push();
      },
      true,
    );
    let identity = config.identity;
    session = new VolunteerSession({
      url: config.url,
      threads: config.threads,
      prefetch: config.prefetch,
      agent: config.agent,
      ...(config.name === undefined ? {} : { name: config.name }),
      startPaused: config.paused,
      // At most 5 s between attempts: after a master restart the tab is back well inside the master's
      // 10 s reassignment window, so it keeps the tasks it holds, and 5 s of full jitter still spreads
      // thousands of tabs over the restart.
      backoff: { minMs: 500, maxMs: 5000 },
      connect: (url) => new WebSocket(url) as unknown as SocketLike,
      executor: pool,
      identity: {
        load: () => identity,
        save: (id, secret) => {
          identity = { id, secret };
          void saveIdentity(identity);
        },
      },
      onChange: (s) => {
        noteRetry(s);
        push();
      },
      log: (line) => console.info(`tabreduce: ${line}`),
    });
    session.start();
    push();
  },
  setPaused(paused: boolean) {
    session?.setPaused(paused);
  },
  setThreads(threads: number) {
    session?.setThreads(threads);
  },
  setName(name: string) {
    session?.setName(name);
  },
};

expose(api);

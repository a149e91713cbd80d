import { createAdaptorServer } from '@hono/node-server';
import { createServer as createHttpsServer } from 'node:https';
import type { Server } from 'node:http';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync, accessSync, constants } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { join, resolve } from 'node:path';
import type { AddressInfo } from 'node:net';
import { openDatabase } from './db.js';
import { Scheduler, type Clock } from './scheduler/index.js';
import { createStores } from './sql/index.js';
import { createApp } from './app.js';
import { createHub } from './ws-hub.js';
import { fsReason } from './cli/files.js';
import { createFrameParser } from './frame-parser.js';
import { UserError, toError } from '../shared/errors.js';
import { isStorageError } from './storage-errors.js';
import { startCheckpointer } from './wal-checkpointer.js';
import { lockDataDir } from './data-lock.js';
import { LocalBlobStore } from './blobs/local-blob-store.js';
import { sweepBlobs } from './blobs/sweep.js';
import { convertLegacyMapResults } from './blobs/legacy.js';
import { createOriginGate, isLoopbackName } from './origin-check.js';
import { applyRetention, retentionEveryMs } from './retention.js';

export interface ServeOptions {
  host: string;
  port: number;
  data: string;
  reassignAfterMs: number;
  heartbeatMs: number;
  tlsCert?: string;
  tlsKey?: string;
  maxUploadBytes: number;
  maxMessageBytes: number;
  maxPerIp: number;
  /** Origins, besides the master's own, whose pages may volunteer (`--allow-origin`, normalised). */
  allowOrigins: readonly string[];
  /** Finished jobs are deleted this long after they finished (`--retain`); absent or null: kept until deleted. */
  retainMs?: number | null;
  /** Verification (`--trust-after`, `--spot-check`); absent: the scheduler's defaults. */
  trustAfter?: number;
  spotCheckRate?: number;
  log: (line: string) => void;
  clock?: Clock;
}

/**
 * Connections the kernel holds for the master before it accepts them. A restarted master is busy
 * recovering while its volunteers come back: with Node's default of 511, 1,000 volunteers
 * reconnecting overflowed the queue 284 times (`npm run bench -- recovery`), and each dropped SYN
 * costs its volunteer a one-second retransmission. Linux caps it at net.core.somaxconn (4,096 here).
 */
const LISTEN_BACKLOG = 4_096;

/** How often the time rules run: a tenth of the smallest delay they enforce keeps them within 10%. */
const SWEEP_MS = 250;
/** A sweep this much later than due means the process stalled, not the volunteers. */
const STALL_MS = 2_000;

export interface Master {
  url: string;
  port: number;
  scheduler: Scheduler;
  tokenSource: string;
  close(): Promise<void>;
}

/** The admin token: TABREDUCE_TOKEN if set, else DATA/admin-token, created once with mode 0600. */
export function loadToken(data: string): { token: string; source: string } {
  const env = process.env['TABREDUCE_TOKEN'];
  if (env) return { token: env, source: 'the TABREDUCE_TOKEN environment variable' };
  const file = join(data, 'admin-token');
  if (!existsSync(file)) {
    writeFileSync(file, `${randomBytes(24).toString('base64url')}\n`, { mode: 0o600 });
    chmodSync(file, 0o600);
  }
  return { token: readFileSync(file, 'utf8').trim(), source: resolve(file) };
}

function readTlsFile(path: string, flag: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new UserError(`cannot read ${flag} ${path}: ${fsReason(e)}`);
  }
}

function clientDir(): string {
  const here = fileURLToPath(new URL('.', import.meta.url));
  for (const rel of ['../client', '../dist/client']) {
    const dir = resolve(here, rel);
    if (existsSync(join(dir, 'index.html'))) return dir;
  }
  return resolve(here, '../dist/client');
}

function prepareDataDir(data: string): void {
  try {
    mkdirSync(data, { recursive: true });
    accessSync(data, constants.W_OK | constants.R_OK);
  } catch (e) {
    throw new UserError(
      `cannot use the data directory ${resolve(data)}: ${toError(e).message}; pass --data with a writable directory`,
    );
  }
}

export async function startMaster(opts: ServeOptions): Promise<Master> {
  prepareDataDir(opts.data);
  const lock = lockDataDir(opts.data);
  try {
    return await startLocked(opts, () => lock.release());
  } catch (e) {
    lock.release();
    throw e;
  }
}

async function startLocked(opts: ServeOptions, unlock: () => void): Promise<Master> {
  const { token, source } = loadToken(opts.data);
  const dbPath = join(opts.data, 'tabreduce.db');
  const db = openDatabase(dbPath, { checkpointElsewhere: true });
  convertLegacyMapResults(db, opts.log);
  const stores = createStores(db);
  const blobs = new LocalBlobStore(join(opts.data, 'blobs'));
  const scheduler = new Scheduler(db, stores, {
    clock: opts.clock,
    reassignAfterMs: opts.reassignAfterMs,
    heartbeatMs: opts.heartbeatMs,
    maxMessageBytes: opts.maxMessageBytes,
    maxOutputBytes: opts.maxUploadBytes,
    trustAfter: opts.trustAfter,
    spotCheckRate: opts.spotCheckRate,
    blobs,
    log: opts.log,
  });
  const swept = await sweepBlobs(stores, blobs, opts.log);
  for (const [lease, upload] of swept.uploads) {
    if (!scheduler.uploaded(lease, upload)) await blobs.delete(upload.blob);
  }
  const app = createApp(scheduler, stores, {
    token,
    clientDir: clientDir(),
    maxUploadBytes: opts.maxUploadBytes,
    blobs,
    log: opts.log,
  });
  const parser = createFrameParser({ log: opts.log });
  const hub = createHub(scheduler, {
    maxMessageBytes: opts.maxMessageBytes,
    maxPerIp: opts.maxPerIp,
    parser,
    log: opts.log,
    admitOrigin: createOriginGate({ allowed: opts.allowOrigins, loopbackOnly: isLoopbackName(opts.host) }, opts.log),
  });
  const tls = opts.tlsCert && opts.tlsKey;
  if ((opts.tlsCert && !opts.tlsKey) || (!opts.tlsCert && opts.tlsKey)) {
    throw new UserError('--tls-cert and --tls-key go together: give both or neither');
  }
  const serverOptions = tls
    ? { cert: readTlsFile(opts.tlsCert!, '--tls-cert'), key: readTlsFile(opts.tlsKey!, '--tls-key') }
    : undefined;
  const server = createAdaptorServer({
    fetch: app.fetch,
    ...(tls ? { createServer: createHttpsServer, serverOptions } : {}),
  }) as Server;
  await new Promise<void>((ok, fail) => {
    server.once('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EADDRINUSE')
        fail(new UserError(`port ${opts.port} on ${opts.host} is in use; pick another with --port`));
      else fail(e);
    });
    server.listen({ port: opts.port, host: opts.host, backlog: LISTEN_BACKLOG }, () => ok());
  });
  server.on('upgrade', (req, socket, head) => hub.upgrade(req, socket, head));
  // Started once listening: a thread left running by a refused start would keep the process alive.
  const checkpointer = startCheckpointer(dbPath, { log: opts.log });
  // A timer's exception would end the process; a full disk must not, so each tick is guarded.
  const every = (ms: number, what: string, fn: () => void) =>
    setInterval(() => {
      try {
        fn();
      } catch (e) {
        opts.log(`${what} failed: ${isStorageError(e) ? toError(e).message : toError(e).stack}`);
      }
    }, ms);
  // If the process itself stalled (a huge first dispatch, a slow disk, GC), heartbeats that arrived
  // meanwhile are still queued behind this timer: excuse the stall rather than expel everyone.
  let lastSweep = performance.now();
  const sweeper = every(SWEEP_MS, 'sweep', () => {
    const now = performance.now();
    const late = now - lastSweep - SWEEP_MS;
    lastSweep = now;
    if (late > STALL_MS) {
      opts.log(`the master stalled for ${Math.round(late)}ms; volunteers are not blamed for it`);
      scheduler.excuse(late);
    }
    scheduler.sweep();
  });
  const flusher = every(SWEEP_MS, 'saving volunteers', () => scheduler.saveVolunteers());
  // Retention deletes blobs, which takes turns of the event loop: one pass at a time, and close()
  // waits for the one under way before it closes the database under it. Volunteer rows are looked
  // at once a minute, however short the retention.
  const retainMs = opts.retainMs ?? null;
  let closed = false;
  let retaining: Promise<void> | null = null;
  let volunteersAt = -Infinity;
  const retain = () => {
    if (retaining || closed) return;
    const volunteers = performance.now() - volunteersAt >= 60_000;
    if (volunteers) volunteersAt = performance.now();
    retaining = applyRetention(scheduler, stores.jobs, { retainMs, log: opts.log, stopping: () => closed, volunteers })
      .then(
        () => {},
        (e: unknown) => opts.log(`retention failed: ${isStorageError(e) ? toError(e).message : toError(e).stack}`),
      )
      .finally(() => (retaining = null));
  };
  const retention = setInterval(retain, retentionEveryMs(retainMs));
  const port = (server.address() as AddressInfo).port;
  const shownHost = opts.host === '0.0.0.0' || opts.host === '::' ? 'localhost' : opts.host;
  const url = `${tls ? 'https' : 'http'}://${shownHost.includes(':') ? `[${shownHost}]` : shownHost}:${port}`;
  retain();
  return {
    url,
    port,
    scheduler,
    tokenSource: source,
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(sweeper);
      clearInterval(flusher);
      clearInterval(retention);
      await retaining;
      hub.close();
      server.closeAllConnections?.();
      await new Promise<void>((ok) => server.close(() => ok()));
      try {
        scheduler.flush();
        scheduler.saveVolunteers(Infinity);
      } catch (e) {
        opts.log(`could not save volunteers at shutdown: ${toError(e).message}`);
      }
      await checkpointer.stop();
      await parser.close();
      db.close();
      unlock();
    },
  };
}

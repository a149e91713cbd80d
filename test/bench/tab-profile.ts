/**
 * CPU profiles of a Chromium tab's threads, over the DevTools protocol: the page, its session worker
 * and its job workers. Playwright's CDP sessions reach pages only, so this speaks the protocol itself
 * on the browser's debugging port: auto-attach with flat sessions reaches every page, every worker
 * it starts and every worker those start, and V8's sampling profiler runs in each from the moment it
 * is attached. `renderProfile` (cpu-profile.ts) summarises each thread's profile.
 */
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import WebSocket from 'ws';

/** A free port on loopback for Chromium's `--remote-debugging-port`. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

interface Reply {
  result?: { profile?: unknown };
  error?: { message: string };
}

/** Sampling interval, µs: fine enough for tasks of tens of milliseconds, light enough not to skew them. */
const SAMPLE_US = 500;

export class TabProfiler {
  private nextId = 1;
  private readonly pending = new Map<number, (r: Reply) => void>();
  /** Profiled targets by session: "page …", "worker tabreduce volunteer", "worker tabreduce job …". */
  private readonly threads = new Map<string, string>();

  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => this.receive(JSON.parse(data.toString()) as Record<string, unknown>));
  }

  /** Attaches to the browser listening on `port`, and to every page and worker from now on. */
  static async attach(port: number): Promise<TabProfiler> {
    const version = (await (await fetch(`http://127.0.0.1:${port}/json/version`)).json()) as {
      webSocketDebuggerUrl: string;
    };
    const ws = new WebSocket(version.webSocketDebuggerUrl, { maxPayload: 1024 ** 3 });
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const p = new TabProfiler(ws);
    await p.send('Target.setAutoAttach', { autoAttach: true, waitForDebuggerOnStart: false, flatten: true });
    return p;
  }

  /** The threads profiled so far, by name. */
  names(): string[] {
    return [...this.threads.values()];
  }

  /** Stops every profiler and writes each thread's profile to `dir`; closes the connection. */
  async stop(dir: string): Promise<{ thread: string; file: string }[]> {
    const out: { thread: string; file: string }[] = [];
    for (const [session, thread] of this.threads) {
      const r = await this.send('Profiler.stop', {}, session);
      if (!r.result?.profile) continue; // the thread ended (a job worker retired): its samples went with it
      const file = join(dir, `tab-${out.length}.cpuprofile`);
      writeFileSync(file, JSON.stringify(r.result.profile));
      out.push({ thread, file });
    }
    this.ws.close();
    return out;
  }

  private send(method: string, params: object, sessionId?: string): Promise<Reply> {
    const id = this.nextId++;
    this.ws.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
    return new Promise((resolve) => this.pending.set(id, resolve));
  }

  private receive(m: Record<string, unknown>): void {
    const id = m.id as number | undefined;
    if (id !== undefined) {
      this.pending.get(id)?.(m as Reply);
      this.pending.delete(id);
      return;
    }
    if (m.method !== 'Target.attachedToTarget') return;
    const { sessionId, targetInfo } = m.params as {
      sessionId: string;
      targetInfo: { type: string; title: string; url: string };
    };
    void this.profile(sessionId, targetInfo);
  }

  private async profile(session: string, target: { type: string; title: string; url: string }): Promise<void> {
    // Workers started by this target (the session worker's job workers) are attached in turn.
    await this.send(
      'Target.setAutoAttach',
      { autoAttach: true, waitForDebuggerOnStart: false, flatten: true },
      session,
    );
    if (target.type !== 'page' && target.type !== 'worker') return;
    await this.send('Profiler.enable', {}, session);
    await this.send('Profiler.setSamplingInterval', { interval: SAMPLE_US }, session);
    await this.send('Profiler.start', {}, session);
    this.threads.set(session, target.type === 'page' ? 'page (main thread)' : `worker "${target.title}"`);
  }
}

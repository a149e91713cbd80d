/**
 * A Node volunteer that speaks the real protocol from a chosen address (127.0.0.2 and up stand for
 * other hosts) and runs the job's real code in this process, then, when told to, lies: it returns
 * well-formed output with every count multiplied by 7 (or another factor). What a hostile tab can
 * do, and the honest volunteers beside it on addresses of their own.
 */
import { WebSocket } from 'ws';
import { asJobModule } from '../../shared/engine.js';
import { runTask, taskInput } from '../../shared/task-runner.js';
import { encodeMapOutput } from '../../shared/records.js';
import type { MasterMessage, TaskAssign } from '../../shared/protocol.js';
import { serializeError } from '../../shared/errors.js';

export interface ScriptedVolunteer {
  /** Its identity, once welcomed. */
  id: () => string | null;
  /** Results sent so far. */
  results: () => number;
  /** The leases of the results it falsified. */
  lied: () => string[];
  /** Connects again as the same identity (after the master restarted, say); tasks it held are dropped. */
  reconnect: () => Promise<void>;
  close: () => Promise<void>;
}

/**
 * Every count `factor` times what it is: the number that opens each value of a reduce's lines (word
 * count's `key<TAB>n`, inverted index's `key<TAB>n doc,doc`), or a map's values repeated.
 */
export function falsify(phase: 'map' | 'reduce', nReduce: number, output: string, factor = 7): string {
  if (phase === 'reduce') return output.replace(/\t(\d+)/g, (_, n: string) => `\t${Number(n) * factor}`);
  const parts = Array.from({ length: nReduce }, () => [] as [string, string[]][]);
  for (const line of output.split('\n').filter(Boolean)) {
    const [part, key, values] = JSON.parse(line) as [number, string, string[]];
    parts[part]!.push([key, values.flatMap((x) => Array<string>(factor).fill(x))]);
  }
  return encodeMapOutput(parts);
}

/**
 * Connects to the master at `base` from `address`; `lies(n)` says whether its `n`th result (from 1)
 * is falsified, by `factor` (7). One task at a time.
 */
export async function startScriptedVolunteer(
  base: string,
  opts: { address?: string; lies?: (n: number) => boolean; factor?: number } = {},
): Promise<ScriptedVolunteer> {
  let ws: WebSocket;
  let id: string | null = null;
  let secret: string | null = null;
  let results = 0;
  const lied: string[] = [];
  let inlineBytes = 64 * 1024;
  const modules = new Map<string, Promise<ReturnType<typeof asJobModule>>>();
  let closed = Promise.resolve();
  let beat: NodeJS.Timeout | undefined;
  // Each frame goes on the socket its task came by: a result for a lease of a closed connection is
  // dropped, as the master let go of that lease when this volunteer came back without it.
  const send = (socket: WebSocket, m: unknown) => {
    if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(m));
  };
  const text = async (data: { text?: string; url?: string }) => {
    if (data.text !== undefined) return data.text;
    const r = await fetch(new URL(data.url!, base));
    if (!r.ok) throw new Error(`${data.url}: ${r.status}`);
    return r.text();
  };
  const run = async (t: TaskAssign, socket: WebSocket) => {
    let mod = modules.get(t.moduleUrl);
    if (!mod) {
      const url = new URL(t.moduleUrl, base);
      mod = fetch(url)
        .then((r) => (r.ok ? r.text() : Promise.reject(new Error(`${url}: ${r.status}`))))
        .then(async (src) => asJobModule(await import(`data:text/javascript,${encodeURIComponent(src)}`)));
      // A module the master could not send (it was restarting) is fetched again for the next task.
      mod.catch(() => modules.delete(t.moduleUrl));
      modules.set(t.moduleUrl, mod);
    }
    const input = await text(t.input);
    const key = t.phase === 'map' ? t.input.key : '';
    const job = await mod;
    let out: Awaited<ReturnType<typeof runTask>>;
    try {
      out = await runTask(job, taskInput(t.phase, t.nReduce, key, input), () => performance.now());
    } catch (e) {
      // Its stack would name the module's data: URL, the whole module: the message is enough here.
      const { name, message } = serializeError(e);
      send(socket, { type: 'task.fail', lease: t.lease, reason: 'threw', error: { name, message } });
      return;
    }
    results++;
    let output = out.output;
    if (opts.lies?.(results)) {
      output = falsify(t.phase, t.nReduce, output, opts.factor);
      // An output with nothing to count (no records) stays true.
      if (output !== out.output) lied.push(t.lease);
    }
    if (Buffer.byteLength(output) <= inlineBytes) {
      send(socket, { type: 'task.result', lease: t.lease, output, stats: out.stats });
      return;
    }
    const put = await fetch(new URL(`/data/${t.lease}/output`, base), { method: 'PUT', body: output });
    if (put.ok) send(socket, { type: 'task.result', lease: t.lease, uploaded: true, stats: out.stats });
  };
  let queue = Promise.resolve();
  const open = async () => {
    const socket = new WebSocket(
      base.replace(/^http/, 'ws') + '/ws',
      opts.address ? { localAddress: opts.address } : {},
    );
    ws = socket;
    closed = new Promise<void>((r) => socket.on('close', () => r()));
    socket.on('message', (d) => {
      const m = JSON.parse(d.toString()) as MasterMessage;
      if (m.type === 'welcome') {
        id = m.volunteerId;
        secret = m.secret;
        inlineBytes = m.inlineBytes;
        clearInterval(beat);
        beat = setInterval(() => send(socket, { type: 'heartbeat', running: [] }), m.heartbeatMs);
      }
      if (m.type === 'task.assign') queue = queue.then(() => run(m, socket)).catch(() => {});
    });
    socket.on('error', () => {});
    await new Promise<void>((ok, fail) => {
      socket.once('open', () => ok());
      socket.once('error', fail);
    });
    const again = id && secret ? { volunteerId: id, secret } : {};
    send(socket, {
      type: 'hello',
      protocol: 2,
      threads: 1,
      slots: 1,
      paused: false,
      agent: 'scripted volunteer',
      running: [],
      ...again,
    });
  };
  const close = async () => {
    clearInterval(beat);
    ws.close();
    await closed;
  };
  await open();
  return {
    id: () => id,
    results: () => results,
    lied: () => lied,
    reconnect: async () => {
      await close();
      await open();
    },
    close,
  };
}

/**
 * A Node volunteer that speaks the real protocol from a chosen address (127.0.0.2 and up stand for
 * other hosts) and runs the job's real code in this process, then, when told to, lies: it returns
 * well-formed output with every count multiplied by 7. What a hostile tab can do, and the honest
 * volunteers beside it on addresses of their own.
 */
import { WebSocket } from 'ws';
import { asJobModule } from '../../shared/engine.js';
import { runTask, taskInput } from '../../shared/task-runner.js';
import { encodeMapOutput } from '../../shared/records.js';
import type { MasterMessage, TaskAssign } from '../../shared/protocol.js';

export interface ScriptedVolunteer {
  /** Its identity, once welcomed. */
  id: () => string | null;
  /** Results sent so far. */
  results: () => number;
  close: () => Promise<void>;
}

/** Every count 7 times what it is: a reduce's `key<TAB>n` lines, or a map's values repeated 7 times. */
export function falsify(phase: 'map' | 'reduce', nReduce: number, output: string): string {
  if (phase === 'reduce') return output.replace(/\t(\d+)\n/g, (_, n: string) => `\t${Number(n) * 7}\n`);
  const parts = Array.from({ length: nReduce }, () => [] as [string, string[]][]);
  for (const line of output.split('\n').filter(Boolean)) {
    const [part, key, values] = JSON.parse(line) as [number, string, string[]];
    parts[part]!.push([key, values.flatMap((x) => Array<string>(7).fill(x))]);
  }
  return encodeMapOutput(parts);
}

/**
 * Connects to the master at `base` from `address`; `lies(n)` says whether its `n`th result (from 1)
 * is falsified. One task at a time.
 */
export async function startScriptedVolunteer(
  base: string,
  opts: { address?: string; lies?: (n: number) => boolean } = {},
): Promise<ScriptedVolunteer> {
  const ws = new WebSocket(base.replace(/^http/, 'ws') + '/ws', opts.address ? { localAddress: opts.address } : {});
  let id: string | null = null;
  let results = 0;
  let inlineBytes = 64 * 1024;
  const modules = new Map<string, Promise<ReturnType<typeof asJobModule>>>();
  const closed = new Promise<void>((r) => ws.on('close', () => r()));
  let beat: NodeJS.Timeout | undefined;
  const send = (m: unknown) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(m));
  };
  const text = async (data: { text?: string; url?: string }) => {
    if (data.text !== undefined) return data.text;
    return (await fetch(new URL(data.url!, base))).text();
  };
  const run = async (t: TaskAssign) => {
    let mod = modules.get(t.moduleUrl);
    if (!mod) {
      const url = new URL(t.moduleUrl, base);
      mod = fetch(url)
        .then((r) => r.text())
        .then(async (src) => asJobModule(await import(`data:text/javascript,${encodeURIComponent(src)}`)));
      modules.set(t.moduleUrl, mod);
    }
    const input = await text(t.input);
    const key = t.phase === 'map' ? t.input.key : '';
    const out = await runTask(await mod, taskInput(t.phase, t.nReduce, key, input), () => performance.now());
    results++;
    const output = opts.lies?.(results) ? falsify(t.phase, t.nReduce, out.output) : out.output;
    if (Buffer.byteLength(output) <= inlineBytes) {
      send({ type: 'task.result', lease: t.lease, output, stats: out.stats });
      return;
    }
    const put = await fetch(new URL(`/data/${t.lease}/output`, base), { method: 'PUT', body: output });
    if (put.ok) send({ type: 'task.result', lease: t.lease, uploaded: true, stats: out.stats });
  };
  let queue = Promise.resolve();
  ws.on('message', (d) => {
    const m = JSON.parse(d.toString()) as MasterMessage;
    if (m.type === 'welcome') {
      id = m.volunteerId;
      inlineBytes = m.inlineBytes;
      beat = setInterval(() => send({ type: 'heartbeat', running: [] }), m.heartbeatMs);
    }
    if (m.type === 'task.assign') queue = queue.then(() => run(m)).catch(() => {});
  });
  ws.on('error', () => {});
  await new Promise<void>((ok, fail) => {
    ws.once('open', () => ok());
    ws.once('error', fail);
  });
  send({ type: 'hello', protocol: 2, threads: 1, slots: 1, paused: false, agent: 'scripted volunteer', running: [] });
  return {
    id: () => id,
    results: () => results,
    close: async () => {
      clearInterval(beat);
      ws.close();
      await closed;
    },
  };
}

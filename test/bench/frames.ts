/**
 * `/healthz` latency while an attacker sends the largest frames it may, as fast as it can, from 10
 * sockets of one address (127.0.0.2): first frames of `--max-message` before any hello, then, after
 * a hello, valid JSON results of that size for leases it does not hold. Each phase runs for a fixed
 * time against a fresh master; the table gives /healthz percentiles, the bytes the master took in,
 * and its CPU.
 */
import { spawn } from 'node:child_process';
import { WebSocket } from 'ws';
import { sleep } from '../helpers/cluster.js';
import { socketOf, textFrameHeader } from '../helpers/raw-volunteer.js';
import { parseSize } from '../../shared/units.js';
import { commandFor, fmtInt, percentile, type BenchContext, type BenchReport, type Benchmark } from './bench-kit.js';
import { startBenchMaster } from './bench-master.js';
import { ProcSampler } from './proc-stats.js';

const ATTACKER = '127.0.0.2';

interface Phase {
  name: string;
  health: number[];
  sentBytes: number;
  cpuPercent: number;
  sockets: number;
}

/** A valid task.result of about `size` bytes for a made-up lease: records text, escapes and all. */
function bigResult(size: number): Buffer {
  const head = `{"type":"task.result","lease":"${'0'.repeat(32)}","stats":{"ms":1,"recordsIn":1,"recordsOut":1},"output":"`;
  const entry = JSON.stringify('[0,"k",["v"]]\n').slice(1, -1);
  const n = Math.max(1, Math.floor((size - head.length - 20) / entry.length));
  return Buffer.from(`${head}${entry.repeat(n)}"}`);
}

async function attack(url: string, mode: 'before-hello' | 'after-hello', maxBytes: number, until: () => boolean) {
  let sent = 0;
  let sockets = 0;
  const payload = mode === 'after-hello' ? bigResult(maxBytes - 64) : Buffer.alloc(maxBytes - 64, 0x20);
  const frame = Buffer.concat([textFrameHeader(payload.length), payload]);
  const one = async () => {
    while (!until()) {
      sockets++;
      const ws = new WebSocket(url.replace(/^http/, 'ws') + '/ws', { localAddress: ATTACKER, maxPayload: 1024 });
      ws.on('error', () => {});
      const closed = new Promise<void>((r) => ws.once('close', () => r()));
      try {
        await new Promise<void>((ok, fail) => {
          ws.once('open', () => ok());
          ws.once('error', fail);
        });
      } catch {
        await sleep(100);
        continue;
      }
      const socket = socketOf(ws);
      if (mode === 'after-hello') {
        ws.send(
          JSON.stringify({
            type: 'hello',
            protocol: 2,
            threads: 1,
            slots: 0,
            paused: true,
            agent: 'bench attacker',
            running: [],
          }),
        );
        await sleep(50);
      }
      // Frames back to back, each written whole (mask bytes zero, so the body goes as it is).
      while (!until() && ws.readyState === ws.OPEN) {
        const ok = socket.write(frame);
        sent += payload.length;
        if (!ok) await Promise.race([new Promise((r) => socket.once('drain', r)), closed]);
      }
      ws.terminate();
      await closed;
    }
  };
  await Promise.all(Array.from({ length: 10 }, one));
  return { sent, sockets };
}

/**
 * Polls /healthz every 10 ms from a process of its own (the attacker's big writes would stall this
 * one), open loop: a poll is sent on time even while earlier ones wait, and its latency counts from
 * when it was due, so a stall of the master shows in every poll it delays, not in one.
 */
function pollHealth(url: string, ms: number): Promise<number[]> {
  const script = `
    const url = ${JSON.stringify(url)} + '/healthz';
    const times = [];
    const start = performance.now();
    let due = start;
    const pending = [];
    while (due - start < ${ms}) {
      const at = due;
      pending.push(fetch(url).then((r) => r.text()).then(() => times.push(performance.now() - at), () => times.push(Infinity)));
      due += 10;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    await Promise.all(pending);
    process.stdout.write(JSON.stringify(times));
  `;
  return new Promise((ok, fail) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (code) =>
      code === 0 ? ok(JSON.parse(out) as number[]) : fail(new Error(`poller exited ${code}`)),
    );
  });
}

async function runPhase(mode: 'before-hello' | 'after-hello', seconds: number, maxBytes: number, ctx: BenchContext) {
  const m = await startBenchMaster({ args: ['--max-message', String(maxBytes)] });
  try {
    const cpu = new ProcSampler(m.pid);
    const end = Date.now() + seconds * 1000;
    const until = () => Date.now() > end;
    const polling = pollHealth(m.url, seconds * 1000);
    const attacking = attack(m.url, mode, maxBytes, until);
    const health = await polling;
    const { sent, sockets } = await attacking;
    cpu.stop();
    const first = cpu.samples[0]!;
    const last = cpu.samples.at(-1)!;
    ctx.log(`frames ${mode}: ${health.length} polls, ${sockets} sockets`);
    return {
      name: mode,
      health: [...health].sort((a, b) => a - b),
      sentBytes: sent,
      cpuPercent: ((last.cpuMs - first.cpuMs) / (last.t - first.t)) * 100,
      sockets,
    } satisfies Phase;
  } finally {
    await m.kill();
  }
}

async function run(ctx: BenchContext): Promise<BenchReport> {
  const seconds = Number(ctx.options.get('seconds') ?? 15);
  const maxBytes = parseSize(ctx.options.get('max-message') ?? '1MiB', '--max-message');
  const phases: Phase[] = [];
  for (const mode of ['before-hello', 'after-hello'] as const)
    phases.push(await runPhase(mode, seconds, maxBytes, ctx));
  const rows = phases.flatMap((p) => {
    const p99 = percentile(p.health, 99);
    return [
      {
        what: `${p.name}: /healthz p50 / p99 / max`,
        value: `${percentile(p.health, 50).toFixed(1)} / ${p99.toFixed(1)} / ${p.health.at(-1)!.toFixed(0)} ms (n=${fmtInt(p.health.length)})`,
        target: 'p99 < 100 ms',
        met: p99 < 100,
      },
      {
        what: `${p.name}: bytes the attacker wrote, sockets it opened`,
        value: `${fmtInt(Math.round(p.sentBytes / 1024 ** 2))} MiB, ${fmtInt(p.sockets)}`,
      },
      { what: `${p.name}: master CPU (% of one core)`, value: `${p.cpuPercent.toFixed(0)}%` },
    ];
  });
  return {
    name: 'frames',
    title: '/healthz while 10 sockets send the largest frames allowed',
    command: commandFor('frames', ctx),
    setup: [
      `a fresh master per phase with --max-message ${fmtInt(maxBytes)} bytes; the attacker connects from ${ATTACKER}`,
      `before-hello: frames of that size with no hello; after-hello: valid task.result JSON of that size for a made-up lease`,
      `/healthz polled every 10 ms for ${seconds} s per phase`,
    ],
    rows,
    notes: [],
  };
}

export const framesBench: Benchmark = {
  name: 'frames',
  summary: '/healthz latency while 10 sockets send --max-message frames before and after hello',
  run,
};

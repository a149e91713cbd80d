/**
 * Issue 2, connections: how many idle volunteers one master holds. Simulated volunteers on real
 * WebSockets (4 load-generator processes x 2,500) say hello like a tab with 1 thread and 1 prefetch
 * slot, then heartbeat every 2 s; no job runs. We report the master's RSS and CPU while it holds them.
 */
import { tempDir } from '../helpers/cluster.js';
import {
  fmtBytes,
  fmtInt,
  fmtMs,
  sleep,
  type BenchContext,
  type BenchReport,
  type Benchmark,
  tcpRow,
  commandFor,
} from './bench-kit.js';
import { startBenchMaster } from './bench-master.js';
import { renderProfile, summarizeProfile } from './cpu-profile.js';
import { BoxSampler, ProcSampler, readTcpCounters } from './proc-stats.js';
import { openFilesLimit, SimFleet } from './sim-fleet.js';

const TARGET_VOLUNTEERS = 10_000;
const TARGET_RSS = 1024 ** 3;

/** Time an admin request takes while the master is loaded. */
export async function timedGet(url: string, token: string): Promise<number> {
  const t0 = performance.now();
  const res = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
  await res.arrayBuffer();
  if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}`);
  return performance.now() - t0;
}

async function run(ctx: BenchContext): Promise<BenchReport> {
  const volunteers = Number(ctx.options.get('volunteers') ?? TARGET_VOLUNTEERS);
  const processes = Number(ctx.options.get('processes') ?? 4);
  const holdMs = Number(ctx.options.get('hold-seconds') ?? 20) * 1000;
  const profile = ctx.flags.has('profile');
  const master = await startBenchMaster({
    profileDir: profile ? tempDir('tabreduce-bench-prof-') : undefined,
    maxPerIp: volunteers + 100,
  });
  const sampler = new ProcSampler(master.pid);
  const tcp0 = readTcpCounters();
  const box = new BoxSampler();
  let fleet: SimFleet | null = null;
  try {
    ctx.log(`connections: opening ${volunteers} sockets from ${processes} load generators`);
    const connectStart = Date.now();
    const started = await SimFleet.start({
      mode: 'raw',
      url: master.url,
      volunteers,
      processes,
      threads: 1,
      slots: 2,
    });
    fleet = started.fleet;
    const afterConnect = await fleet.stats();
    const connectEnd = Date.now();
    const rssAfterConnect = sampler.sample()?.rssBytes ?? NaN;
    // From the first welcome to the last, so the load generators' own start-up is not counted.
    const rampMs = Math.max(...afterConnect.connectedAt) - Math.min(...afterConnect.connectedAt);
    ctx.log(`connections: ${afterConnect.connected} connected in ${fmtMs(started.connectMs)}; holding ${holdMs} ms`);
    // Heartbeats start 2 s after each welcome; measure the steady state after that.
    await sleep(3_000);
    const holdStart = Date.now();
    const metricsMs: number[] = [];
    while (Date.now() - holdStart < holdMs) {
      metricsMs.push(await timedGet(`${master.url}/metrics`, master.token));
      await sleep(1_000);
    }
    const holdEnd = Date.now();
    const metrics = await fetch(`${master.url}/metrics`).then((r) => r.text());
    const connectedOnMaster = Number(/tabreduce_volunteers\{state="connected"\} (\d+)/.exec(metrics)?.[1] ?? NaN);
    const end = await fleet.stats();
    const cpu = sampler.cpuPercent(holdStart, holdEnd);
    const heartbeatsPerSecond = end.open / 2;
    const rssPeak = sampler.peakRss();
    const closed = Object.entries(end.closedByMaster)
      .map(([code, n]) => `${n} x ${code}`)
      .join(', ');
    const rows = [
      {
        what: 'volunteers connected (welcome received)',
        value: fmtInt(afterConnect.connected),
        target: `>= ${fmtInt(TARGET_VOLUNTEERS)}`,
        met: afterConnect.connected >= TARGET_VOLUNTEERS,
      },
      { what: 'failed to connect', value: fmtInt(afterConnect.failedToConnect) },
      {
        what: 'connect ramp (first to last welcome)',
        value: `${fmtMs(rampMs)} (${fmtInt((afterConnect.connected / rampMs) * 1000)}/s)`,
      },
      {
        what: 'master CPU during the ramp (% of one core)',
        value: `${sampler.cpuPercent(connectStart, connectEnd).toFixed(0)}%`,
      },
      { what: 'master RSS after connect', value: fmtBytes(rssAfterConnect) },
      {
        what: 'master peak RSS',
        value: fmtBytes(rssPeak),
        target: `< ${fmtBytes(TARGET_RSS)}`,
        met: rssPeak < TARGET_RSS,
      },
      {
        what: 'master RSS per volunteer',
        value: `${((rssAfterConnect - sampler.samples[0]!.rssBytes) / afterConnect.connected / 1024).toFixed(1)} KiB`,
      },
      {
        what: `master CPU while idle-heartbeating (${fmtInt(heartbeatsPerSecond)} heartbeats/s)`,
        value: `${cpu.toFixed(1)}% of one core`,
      },
      {
        what: 'master CPU per heartbeat',
        value: `${((((cpu / 100) * 1000) / Math.max(1, heartbeatsPerSecond)) * 1000).toFixed(0)} us`,
      },
      { what: 'connected per the master (/metrics)', value: fmtInt(connectedOnMaster) },
      { what: 'still connected at the end', value: fmtInt(end.open) },
      { what: 'closed by the master during the hold', value: closed || '0' },
      {
        what: 'GET /metrics while holding, max',
        value: fmtMs(Math.max(...metricsMs)),
      },
      {
        what: `${processes} load generators' CPU while holding`,
        value: `${fleet.cpuPercent(holdStart, holdEnd).toFixed(0)}%`,
      },
      {
        what: 'other programs on the box while holding',
        value: `${Math.max(0, box.cpuPercent(holdStart, holdEnd) - cpu - fleet.cpuPercent(holdStart, holdEnd)).toFixed(0)}%`,
      },
      { what: 'open files limit (master needs one per socket)', value: openFilesLimit() },
      tcpRow(tcp0),
    ];
    await fleet.stop();
    fleet = null;
    sampler.stop();
    box.stop();
    await master.stop();
    const notes: string[] = [];
    const prof = master.profile();
    if (prof) notes.push(...renderProfile(summarizeProfile(prof), 'CPU profile of the master (ramp + hold)'));
    return {
      name: 'connections',
      title: 'idle volunteers one master holds (issue 2)',
      command: commandFor('connections', ctx),
      setup: [
        `${fmtInt(volunteers)} simulated volunteers on real WebSockets from ${processes} load-generator processes ` +
          '(test/bench/sim-volunteers.ts), 50 handshakes in flight per process',
        'each: hello {threads: 1, slots: 2}, then a heartbeat every heartbeatMs (2 s) from the welcome; no job',
        `held ${holdMs / 1000} s after a 3 s settle; master RSS and CPU from /proc`,
      ],
      rows,
      notes,
    };
  } finally {
    await fleet?.stop();
    sampler.stop();
    box.stop();
    if (master.proc.exitCode === null && master.proc.signalCode === null) await master.kill();
  }
}

export const connectionsBench: Benchmark = {
  name: 'connections',
  summary: '10,000 idle heartbeating volunteers on one master: RSS and CPU',
  run,
};

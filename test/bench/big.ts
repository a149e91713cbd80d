/**
 * Issue 14, big data: a word count over GiBs of text (the corpus repeated, made here) on one master
 * with two Node volunteers, against `tabreduce local` on the same files. It samples the master's RSS
 * and `/healthz` latency throughout and reports them per phase (upload, map, barrier and reduce,
 * output), the throughput of each phase, and whether the output equals local's byte for byte.
 *
 *   npm run bench -- big                 # 10 GiB (about 25 minutes on a 2-core box, ~30 GiB of disk)
 *   npm run bench -- big --gib 1         # a quicker look
 */
import { createWriteStream, readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { once } from 'node:events';
import { apiGet, corpusFiles, EXAMPLES, tempDir } from '../helpers/cluster.js';
import type { JobView } from '../../shared/api.js';
import {
  commandFor,
  fmtBytes,
  fmtMs,
  sleep,
  summarize,
  timedCli,
  type BenchContext,
  type BenchReport,
  type Benchmark,
  type Row,
} from './bench-kit.js';
import { startBenchMaster, startBenchVolunteer } from './bench-master.js';
import { ProcSampler } from './proc-stats.js';

const MIB = 1024 ** 2;
const GIB = 1024 ** 3;
const RSS_TARGET = 512 * MIB;
const HEALTHZ_TARGET_MS = 100;

/** `gib` GiB of text in files of at most 1 GiB, each the corpus repeated (streamed, never held). */
async function makeInput(gib: number, log: (l: string) => void): Promise<{ files: string[]; total: number }> {
  const dir = tempDir('tabreduce-bench-big-');
  const corpus = Buffer.concat(corpusFiles().map((f) => readFileSync(f)));
  const target = Math.round(gib * GIB);
  const files: string[] = [];
  let total = 0;
  for (let i = 0; total < target; i++) {
    const file = join(dir, `text-${String(i).padStart(3, '0')}.txt`);
    const out = createWriteStream(file);
    let size = 0;
    while (size + corpus.length <= GIB && total + corpus.length <= target + corpus.length) {
      if (!out.write(corpus)) await once(out, 'drain');
      size += corpus.length;
      total += corpus.length;
      if (total >= target) break;
    }
    out.end();
    await once(out, 'finish');
    files.push(file);
    log(`big: wrote ${fmtBytes(total)} of ${fmtBytes(target)}`);
  }
  return { files, total };
}

interface Probe {
  t: number;
  ms: number;
}

/** Polls `/healthz` every 50 ms; a request that takes over 5 s counts as 5 s. */
function pollHealth(url: string): { samples: Probe[]; stop: () => Promise<void> } {
  const samples: Probe[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const t = Date.now();
      const t0 = performance.now();
      try {
        await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(5_000) }).then((r) => r.arrayBuffer());
      } catch {
        // counted at the timeout
      }
      samples.push({ t, ms: performance.now() - t0 });
      await sleep(50);
    }
  })();
  return {
    samples,
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

function within<T extends { t: number }>(xs: T[], from: number, to: number): T[] {
  return xs.filter((x) => x.t >= from && x.t <= to);
}

async function run(ctx: BenchContext): Promise<BenchReport> {
  const gib = Number(ctx.options.get('gib') ?? 10);
  const volunteers = Number(ctx.options.get('volunteers') ?? 2);
  const reduces = ctx.options.get('reduces') ?? '10';
  const module = join(EXAMPLES, 'word-count.js');
  const input = await makeInput(gib, ctx.log);
  const flags = ['--reduces', reduces];
  const mb = (bytes: number, ms: number) => `${(bytes / MIB / (ms / 1000)).toFixed(1)} MiB/s`;

  ctx.log(`big: tabreduce local over ${fmtBytes(input.total)}`);
  const localOut = tempDir('tabreduce-bench-big-local-');
  const local = await timedCli(['local', module, ...input.files, ...flags, '--out', localOut], {}, 6 * 3_600_000);

  const master = await startBenchMaster();
  const rss = new ProcSampler(master.pid, 100);
  const health = pollHealth(master.url);
  const vols = Array.from({ length: volunteers }, () => startBenchVolunteer(master.url, 1));
  const env = { TABREDUCE_TOKEN: master.token };
  try {
    const t0 = Date.now();
    ctx.log('big: uploading');
    const submitted = await timedCli(
      ['submit', module, ...input.files, ...flags, '--server', master.url],
      env,
      3_600_000,
    );
    const id = submitted.out.trim().split('\n')[0]!;
    const uploadedAt = Date.now();
    let job = await apiGet<JobView>(master, `/api/jobs/${id}`);
    // Maps run while the upload arrives: how far they got by its end.
    const mapsAtUpload = { done: job.maps.done, total: job.maps.total };
    let barrierAt = NaN;
    let shuffleBytes = NaN;
    for (let last = ''; job.state !== 'succeeded' && job.state !== 'failed' && job.state !== 'cancelled';) {
      await sleep(250);
      job = await apiGet<JobView>(master, `/api/jobs/${id}`);
      if (job.state === 'reducing' && Number.isNaN(barrierAt)) {
        barrierAt = Date.now();
        // Inputs are gone at the barrier: what is stored then is the map outputs.
        shuffleBytes = (job as JobView & { storedBytes?: number }).storedBytes ?? NaN;
      }
      const line = `${job.state} maps ${job.maps.done}/${job.maps.total} reduces ${job.reduces.done}/${job.reduces.total}`;
      if (line !== last) ctx.log(`big: ${line}`);
      last = line;
    }
    const doneAt = Date.now();
    const distOut = tempDir('tabreduce-bench-big-out-');
    const result =
      job.state === 'succeeded'
        ? await timedCli(['result', id, '--out', distOut, '--server', master.url], env, 3_600_000)
        : null;
    const outAt = Date.now();
    await health.stop();
    rss.stop();

    let exact = `not checked (job ${job.state}: ${job.error ?? ''})`;
    if (result) {
      const parts = readdirSync(localOut).sort();
      const same = parts.every((p) => readFileSync(join(localOut, p)).equals(readFileSync(join(distOut, p))));
      exact = same && readdirSync(distOut).length === parts.length ? 'yes' : 'NO';
    }
    const phases: [string, number, number][] = [
      ['upload and split (maps running)', t0, uploadedAt],
      ['map after the upload', uploadedAt, Number.isNaN(barrierAt) ? doneAt : barrierAt],
      ['barrier and reduce', Number.isNaN(barrierAt) ? doneAt : barrierAt, doneAt],
      ['output (tabreduce result --out)', doneAt, outAt],
    ];
    const outBytes = result ? readdirSync(distOut).reduce((n, f) => n + statSync(join(distOut, f)).size, 0) : 0;
    const rows: Row[] = [
      { what: 'input', value: `${fmtBytes(input.total)} in ${input.files.length} files` },
      { what: 'tabreduce local (wall)', value: `${fmtMs(local.ms)} (${mb(input.total, local.ms)})` },
      {
        what: `distributed, ${volunteers} Node volunteers x 1 thread (submit to output on disk)`,
        value: `${fmtMs(outAt - t0)} (${mb(input.total, outAt - t0)}); ratio to local ${((outAt - t0) / local.ms).toFixed(2)}`,
      },
      {
        what: '  upload and split (the maps run meanwhile)',
        value: `${fmtMs(uploadedAt - t0)} (${mb(input.total, uploadedAt - t0)}); ${mapsAtUpload.done} of ${mapsAtUpload.total} maps done by its end`,
      },
      {
        what: '  map, after the upload',
        value: `${fmtMs(phases[1]![2] - phases[1]![1])}; submit to barrier ${mb(input.total, phases[1]![2] - t0)} of input`,
      },
      {
        what: '  barrier and reduce (shuffle)',
        value: `${fmtMs(phases[2]![2] - phases[2]![1])} (${fmtBytes(shuffleBytes)} of map output, ${mb(shuffleBytes, phases[2]![2] - phases[2]![1])})`,
      },
      { what: '  output', value: `${fmtMs(outAt - doneAt)} (${fmtBytes(outBytes)})` },
    ];
    for (const [name, from, to] of phases) {
      const peak = rss.peakRss(from, to);
      const lat = summarize(within(health.samples, from, to).map((s) => s.ms));
      rows.push({
        what: `master peak RSS, ${name}`,
        value: fmtBytes(peak),
        target: `< ${fmtBytes(RSS_TARGET)}`,
        met: peak < RSS_TARGET,
      });
      rows.push({
        what: `/healthz p99 (max), ${name}`,
        value: `${fmtMs(lat.p99)} (${fmtMs(lat.max)}, ${lat.n} probes)`,
        target: `< ${HEALTHZ_TARGET_MS} ms`,
        met: lat.p99 < HEALTHZ_TARGET_MS,
      });
    }
    rows.push({ what: 'output equals tabreduce local', value: exact, met: exact === 'yes' });
    return {
      name: 'big',
      title: `${fmtBytes(input.total)} word count through the blob store on one master (issue 14)`,
      command: commandFor('big', ctx),
      setup: [
        `word-count over the corpus repeated to ${fmtBytes(input.total)} (${input.files.length} files of up to 1 GiB), default --split-size 4MiB, --reduces ${reduces}`,
        `one master (its RSS sampled every 100 ms, /healthz every 50 ms), ${volunteers} \`tabreduce volunteer --threads 1\``,
        'local first, then distributed, same files; phases from the job state polled every 250 ms',
      ],
      rows,
      notes: [`files: ${input.files.map((f) => basename(f)).join(', ')}`],
    };
  } finally {
    await health.stop();
    rss.stop();
    for (const v of vols) await v.kill();
    await master.stop();
  }
}

export const bigBench: Benchmark = {
  name: 'big',
  summary: 'word count over 10 GiB (--gib N): master RSS, /healthz and MB/s per phase vs tabreduce local',
  run,
};

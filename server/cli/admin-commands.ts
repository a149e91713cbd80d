/** The admin's commands: submit, status, wait, result, cancel, delete, workers. One function per command. */
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { parseDuration, parseSize, formatBytes, formatDuration } from '../../shared/units.js';
import { UserError, errorLocation, type SerializedError } from '../../shared/errors.js';
import { loadJobSource } from './bundle.js';
import { checkSpec, inputKeys, JOB_DEFAULTS } from '../submit-job.js';
import type { JobView, WorkerView } from '../../shared/api.js';
import { ATTEMPT_OUTCOMES, VERIFY_MODES, type VerifyMode } from '../../shared/states.js';
import type { AdminTarget } from './admin-client.js';
import { checkReadable, expandInputs, prepareOutDir, writeOutFile } from './files.js';
import { eta, waitForJob } from './progress.js';
import { isJobFinished } from '../../shared/states.js';
import { jsonText, stripControls } from './terminal-text.js';

export type Flags = Record<string, string | boolean | undefined>;

export function intFlag(v: string | boolean | undefined, name: string, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'string' || !/^\d+$/.test(v))
    throw new UserError(`--${name} must be a whole number, got ${JSON.stringify(v)}`);
  return Number(v);
}

function verifyFlag(v: string | boolean): VerifyMode {
  if (typeof v === 'string' && (VERIFY_MODES as readonly string[]).includes(v)) return v as VerifyMode;
  throw new UserError(`--verify must be one of ${VERIFY_MODES.join(', ')}, got ${JSON.stringify(v)}`);
}

function str(v: string | boolean | undefined): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/** Prints the outcome of a finished job; returns the exit code (0 succeeded, 1 failed or cancelled). */
function reportEnd(job: JobView): number {
  if (job.state === 'succeeded') {
    process.stderr.write(
      `job ${job.id} succeeded in ${formatDuration((job.finishedAt ?? Date.now()) - job.createdAt)}\n`,
    );
    return 0;
  }
  // The reason may quote a volunteer's error and stack: printed, but not acted on by the terminal.
  const reason = job.error ? `: ${stripControls(job.error, { multiline: true })}` : '';
  process.stderr.write(`job ${job.id} ${job.state}${reason}\n`);
  return 1;
}

export async function submit(t: AdminTarget, args: string[], f: Flags): Promise<number> {
  const [modulePath, ...named] = args;
  if (!modulePath) throw new UserError('usage: tabreduce submit JOB.js INPUT... (see tabreduce submit --help)');
  if (named.length === 0) throw new UserError('no input files: tabreduce submit JOB.js INPUT...');
  const spec = {
    reduces: intFlag(f['reduces'], 'reduces', JOB_DEFAULTS.reduces),
    splitSize: f['split-size'] ? parseSize(String(f['split-size']), '--split-size') : JOB_DEFAULTS.splitSize,
    taskTimeoutMs: f['task-timeout']
      ? parseDuration(String(f['task-timeout']), '--task-timeout')
      : JOB_DEFAULTS.taskTimeoutMs,
    maxAttempts: intFlag(f['max-attempts'], 'max-attempts', JOB_DEFAULTS.maxAttempts),
    skipBadRecords: intFlag(f['skip-bad-records'], 'skip-bad-records', JOB_DEFAULTS.skipBadRecords),
  };
  checkSpec(spec);
  const verify = f['verify'] === undefined ? JOB_DEFAULTS.verify : verifyFlag(f['verify']);
  // Everything that can be checked here is, before a byte is uploaded.
  const module = await loadJobSource(modulePath, { bundle: f['no-bundle'] !== true });
  const inputs = await expandInputs(named);
  inputKeys(inputs);
  for (const path of inputs) await checkReadable(path, 'input file');

  // The client streams each file from disk as the request goes out, rather than reading it all first.
  const id = await t.client.submit({
    module: { name: module.name, source: module.source },
    inputs,
    name: str(f['name']),
    ...spec,
    verify,
  });
  // With --json, one JSON object per line: the id at once, then (with --wait) the finished job.
  process.stdout.write(f['json'] ? `${jsonText({ id })}\n` : `${id}\n`);
  if (!f['wait']) return 0;
  const job = await waitForJob(t, id);
  if (f['json']) process.stdout.write(`${jsonText(job)}\n`);
  return reportEnd(job);
}

export async function wait(t: AdminTarget, args: string[], f: Flags): Promise<number> {
  const id = needJob(args, 'wait');
  const job = await waitForJob(t, id);
  if (f['json']) process.stdout.write(`${jsonText(job)}\n`);
  return reportEnd(job);
}

function needJob(args: string[], cmd: string): string {
  const id = args[0];
  if (!id) throw new UserError(`usage: tabreduce ${cmd} JOB (job ids are listed by tabreduce status)`);
  return id;
}

/** Columns padded to line up; each cell one line of printable text, whoever wrote it. */
function table(cells: string[][]): string {
  const rows = cells.map((r) => r.map((c) => stripControls(c)));
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}

function age(ms: number): string {
  return `${formatDuration(Date.now() - ms)} ago`;
}

/** How a job's results were checked: its mode, then its committed tasks by how they were confirmed. */
function verificationLine(job: JobView): string {
  const v = job.verification;
  if (job.verify === 'off') return 'off (results are not checked)';
  const notConfirmed = v.unconfirmed > 0 ? ` (${v.unconfirmed} tasks not independently confirmed)` : '';
  return (
    `${job.verify}: verified ${v.verified}, spot-checked ${v.spotChecked}, trusted ${v.trusted}, ` +
    `unconfirmed ${v.unconfirmed}, rejected ${v.rejected}${notConfirmed}`
  );
}

/** A job's counters as `status JOB` and `local` list them: `counters`, then `  NAME  N` lines aligned. */
export function counterLines(counters: Record<string, number>): string[] {
  const names = Object.entries(counters);
  if (names.length === 0) return [];
  const width = Math.max(...names.map(([name]) => name.length));
  return ['counters', ...names.map(([name, n]) => stripControls(`  ${name.padEnd(width)}  ${n}`))];
}

/** A skipped line in one line: where, its first characters, and what its `map` threw where. */
export function skippedText(r: { input: string; line: number; text: string; error: SerializedError }): string {
  const at = errorLocation(r.error.stack);
  return `line ${r.line} of ${r.input} (${JSON.stringify(r.text)}): ${r.error.name}: ${r.error.message}${at ? ` (${at})` : ''}`;
}

/** What a job's stored bytes are, and until when they stay. */
function storedNote(job: JobView): string {
  if (job.state === 'queued' || job.state === 'mapping') return '(inputs and map outputs so far)';
  if (job.state === 'reducing') return '(map outputs and output so far)';
  return job.storedBytes > 0 ? `(output; \`tabreduce delete ${job.id}\` frees it)` : '';
}

export async function status(t: AdminTarget, args: string[], f: Flags): Promise<number> {
  if (args[0]) {
    const id = args[0];
    const job = await t.client.job(id);
    // Counted by the master: a job of 200,000 tasks is not downloaded to count its attempts.
    const summary = await t.client.summary(id);
    if (f['json']) {
      // Scripts have always had every task here; they still do, fetched a page at a time.
      const tasks = await t.client.tasks(id);
      process.stdout.write(`${jsonText({ ...job, tasks, summary }, 2)}\n`);
      return 0;
    }
    const line = (text: string) => stripControls(text);
    const lines = [
      `job        ${job.id}  ${line(job.name)}`,
      `state      ${job.state}`,
      `created    ${new Date(job.createdAt).toISOString()} (${age(job.createdAt)})`,
      `elapsed    ${formatDuration((job.finishedAt ?? Date.now()) - job.createdAt)}${isJobFinished(job.state) ? '' : `, eta ${eta(job, Date.now())}`}`,
      `maps       ${job.maps.done}/${job.maps.total}${job.uploading ? ' so far (its input is still uploading; the reduces wait for the rest)' : ''}   reduces ${job.reduces.done}/${job.reduces.total}`,
      `input      ${formatBytes(job.inputBytes)} in splits of ${formatBytes(job.splitSize)}; records emitted ${job.recordsIn}, written ${job.recordsOut}`,
      `attempts   ${ATTEMPT_OUTCOMES.map((o) => `${o} ${summary.attempts[o]}`).join(', ')}`,
      `limits     task timeout ${formatDuration(job.taskTimeoutMs)}, max attempts ${job.maxAttempts}`,
      `verify     ${verificationLine(job)}`,
      `stored     ${`${formatBytes(job.storedBytes)} ${storedNote(job)}`.trim()}`,
    ];
    if (summary.durations) {
      const d = summary.durations;
      lines.push(
        `durations  ${formatDuration(d.meanMs)} on average, ${formatDuration(d.maxMs)} at most (succeeded attempts)`,
      );
    }
    lines.push(...counterLines(job.counters));
    if (job.skipBadRecords > 0) {
      lines.push(`skipped    ${job.skipped} of at most ${job.skipBadRecords} bad lines (--skip-bad-records)`);
      for (const r of summary.skipped.slice(0, 20)) lines.push(line(`  ${skippedText(r)}`));
      if (summary.skipped.length > 20) lines.push(`  … ${summary.skipped.length - 20} more (--json lists them all)`);
    }
    if (job.waiting) lines.push(line(`waiting    ${job.waiting}`));
    if (job.error)
      lines.push(`error      ${stripControls(job.error, { multiline: true }).replace(/\n/g, '\n           ')}`);
    for (const a of summary.recentFailures.slice(0, 5)) {
      lines.push(
        line(
          `failed     ${a.phase} ${a.index}${a.input ? ` (${a.input})` : ''} on ${a.worker}: ${a.error?.message ?? ''}`,
        ),
      );
    }
    process.stdout.write(`${lines.join('\n')}\n`);
    return 0;
  }
  const jobs = await t.client.jobs();
  if (f['json']) {
    process.stdout.write(`${jsonText(jobs, 2)}\n`);
    return 0;
  }
  if (jobs.length === 0) {
    process.stdout.write('no jobs yet: submit one with tabreduce submit JOB.js INPUT...\n');
    return 0;
  }
  const now = Date.now();
  const rows = [['ID', 'NAME', 'STATE', 'MAPS', 'REDUCES', 'ELAPSED', 'ETA', 'STORED', 'CREATED']];
  for (const j of jobs) {
    rows.push([
      j.id,
      stripControls(j.name).slice(0, 30),
      j.state,
      `${j.maps.done}/${j.maps.total}`,
      `${j.reduces.done}/${j.reduces.total}`,
      formatDuration((j.finishedAt ?? now) - j.createdAt),
      isJobFinished(j.state) ? '-' : eta(j, now),
      formatBytes(j.storedBytes),
      age(j.createdAt),
    ]);
  }
  process.stdout.write(table(rows));
  return 0;
}

export async function result(t: AdminTarget, args: string[], f: Flags): Promise<number> {
  const id = needJob(args, 'result');
  const job = await t.client.job(id);
  if (job.state === 'failed' || job.state === 'cancelled') {
    // The first line of the reason (a failure's comes with a stack): enough to know what happened.
    const why = job.error ? stripControls(job.error.split('\n')[0]!) : '';
    const brief = why.length > 200 ? `${why.slice(0, 199)}…` : why;
    throw new UserError(
      `job ${id} ${job.state === 'failed' ? 'failed' : 'was cancelled'}${brief ? ` (${brief})` : ''}, so it has no output; \`tabreduce status ${id}\` shows what it did`,
    );
  }
  if (job.state !== 'succeeded')
    throw new UserError(`job ${id} is ${job.state}; its output is ready once it succeeds (tabreduce wait ${id})`);
  const out = str(f['out']);
  if (!out) {
    await pipeline(await t.client.result(id), process.stdout, { end: false });
    return 0;
  }
  await prepareOutDir(out);
  // Each part file is streamed to disk as it arrives: a partition may be larger than memory.
  for (let r = 0; r < job.reduces.total; r++) {
    const body = await t.client.result(id, { partition: r });
    await writeOutFile(join(out, `part-${String(r).padStart(5, '0')}`), body);
  }
  process.stderr.write(
    `wrote ${job.reduces.total} partitions to ${out}/part-00000..part-${String(job.reduces.total - 1).padStart(5, '0')}\n`,
  );
  return 0;
}

export async function cancel(t: AdminTarget, args: string[], f: Flags): Promise<number> {
  const id = needJob(args, 'cancel');
  const job = await t.client.cancel(id);
  if (f['json']) process.stdout.write(`${jsonText(job)}\n`);
  else process.stderr.write(`job ${id} cancelled\n`);
  return 0;
}

/** `tabreduce delete` (`delete` is a reserved word). */
export async function remove(t: AdminTarget, args: string[], f: Flags): Promise<number> {
  const id = needJob(args, 'delete');
  const r = await t.client.delete(id);
  if (f['json']) process.stdout.write(`${jsonText(r)}\n`);
  else process.stderr.write(`deleted job ${id} (freed ${formatBytes(r.freedBytes)})\n`);
  return 0;
}

/** A volunteer's record in a word: trusted, lost (a result of its lost a vote), or its agreeing results so far. */
function trustText(w: WorkerView): string {
  if (w.trust.rejected > 0) return `lost (${w.trust.rejected} rejected)`;
  return w.trust.trusted ? `trusted (${w.trust.agreed})` : `${w.trust.agreed} agreed`;
}

export async function workers(t: AdminTarget, _args: string[], f: Flags): Promise<number> {
  const list = await t.client.workers();
  if (f['json']) {
    process.stdout.write(`${jsonText(list, 2)}\n`);
    return 0;
  }
  if (list.length === 0) {
    process.stdout.write("no volunteers connected: open the master's URL in a browser, or run tabreduce volunteer\n");
    return 0;
  }
  const rows = [
    ['ID', 'STATE', 'THREADS', 'IN HAND', 'DONE', 'TRUST', 'CREDIT', 'CURRENT TASK', 'CONNECTED', 'LAST SEEN', 'AGENT'],
  ];
  for (const w of list) {
    const first = w.tasks[0];
    const current = first
      ? `${first.jobId} ${first.phase} ${first.index}${w.tasks.length > 1 ? ` +${w.tasks.length - 1}` : ''}`
      : '-';
    rows.push([
      w.id,
      w.state,
      String(w.threads),
      String(w.running),
      String(w.done),
      trustText(w),
      formatDuration(w.credit * 1000),
      current,
      age(w.connectedAt),
      age(w.lastSeenAt),
      stripControls(w.name ? `${w.name} · ${w.label}` : w.label).slice(0, 40),
    ]);
  }
  process.stdout.write(table(rows));
  return 0;
}

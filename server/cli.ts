#!/usr/bin/env node
/** `tabreduce`: the master, the admin's commands, the local runner and the headless volunteer. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { UserError, toError } from '../shared/errors.js';
import { formatDuration, parseDuration, parseSize } from '../shared/units.js';
import {
  adminTarget,
  cliError,
  DEFAULT_SERVER,
  MasterError,
  resolveServer,
  type AdminTarget,
} from './cli/admin-client.js';
import * as admin from './cli/admin-commands.js';
import { intFlag, type Flags } from './cli/admin-commands.js';
import { SERVE_DEFAULTS } from './serve-defaults.js';
import { parseOrigin } from './origin-check.js';
import { stripControls } from './cli/terminal-text.js';
import { fsReason, isFsError, prepareOutDir, writeOutFile } from './cli/files.js';
import { guardStdio, isClosedPipe } from './cli/stdio.js';
import { LocalJobError, runLocal } from './cli/local-run.js';
import { checkJob } from './cli/check.js';
import { JOB_DEFAULTS } from './submit-job.js';
import { MAX_SKIP_BAD_RECORDS } from '../shared/protocol.js';
// The constants alone: the scheduler's façade would load all of it.
import { SPOT_CHECK_RATE, TRUST_AFTER } from './scheduler/context.js';

type Options = NonNullable<ParseArgsConfig['options']>;

const COMMON: Options = {
  server: { type: 'string' },
  token: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

const ADMIN_FLAGS = `Common flags:
  --server URL   the master (env TABREDUCE_URL, default ${DEFAULT_SERVER})
  --token T      admin token (env TABREDUCE_TOKEN, else ./data/admin-token)
  --json         machine-readable output`;

interface Command {
  summary: string;
  usage: string;
  options: Options;
  run: (args: string[], f: Flags) => Promise<number>;
}

function adminCommand(
  summary: string,
  usage: string,
  fn: (t: AdminTarget, args: string[], f: Flags) => Promise<number>,
  options: Options = {},
): Command {
  return {
    summary,
    usage: `${usage}\n\n${ADMIN_FLAGS}`,
    options: { ...COMMON, ...options },
    run: async (a, f) => {
      const t = adminTarget(f['server'] as string | undefined, f['token'] as string | undefined);
      try {
        return await fn(t, a, f);
      } catch (e) {
        throw cliError(e, t);
      }
    },
  };
}

const BUNDLE_NOTE = `The job module (.ts, .mts, .js or .mjs) is bundled with what it imports: relative modules
and npm packages from its own node_modules. Node built-ins are refused (tabs have none). Stack
traces of failures name the author's files and lines. --no-bundle sends the file as it is.`;

const defaultThreads = () => Math.max(1, Math.floor(availableParallelism() / 2));

const COMMANDS: Record<string, Command> = {
  serve: {
    summary: 'run the master: API, volunteer page, status page',
    usage: `tabreduce serve [--host ${SERVE_DEFAULTS.host}] [--port ${SERVE_DEFAULTS.port}] [--data ${SERVE_DEFAULTS.data}]
                [--reassign-after 10s] [--heartbeat 2s] [--tls-cert FILE --tls-key FILE]
                [--max-upload 100GiB] [--max-message 1MiB] [--max-per-ip 1024] [--allow-origin URL]...
                [--retain 7d] [--trust-after ${TRUST_AFTER}] [--spot-check ${SPOT_CHECK_RATE}]

Keeps jobs in SQLite under --data; a restart on the same directory resumes them. One master
per data directory: it holds DATA/lock while it runs.
Finished jobs and their output are kept until \`tabreduce delete JOB\`; --retain D deletes
each one D after it finished (checked every tenth of D, at most every minute).
The admin token is TABREDUCE_TOKEN if set, else DATA/admin-token (created once, mode 0600).
Browsers may open the volunteer socket only from the master's own pages (the origin they
were loaded from, as the request's Host names it); --allow-origin URL (repeatable) admits
pages on another origin, such as a proxy that rewrites Host.
In jobs with --verify adaptive, a volunteer's results are accepted alone once --trust-after of
them matched another volunteer's and none lost a vote, and then a --spot-check share of them
(0 to 1) is still checked (README "Verification").

Examples:
  tabreduce serve
  tabreduce serve --host 0.0.0.0 --port 443 --tls-cert cert.pem --tls-key key.pem
  tabreduce serve --allow-origin https://compute.example.org
  tabreduce serve --retain 7d`,
    options: {
      host: { type: 'string' },
      port: { type: 'string' },
      data: { type: 'string' },
      'reassign-after': { type: 'string' },
      heartbeat: { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'max-upload': { type: 'string' },
      'max-message': { type: 'string' },
      'max-per-ip': { type: 'string' },
      'trust-after': { type: 'string' },
      'spot-check': { type: 'string' },
      'allow-origin': { type: 'string', multiple: true },
      retain: { type: 'string' },
      quiet: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    run: serveCommand,
  },
  submit: adminCommand(
    'submit a job; prints its id',
    `tabreduce submit JOB.ts|JOB.js INPUT... [--reduces ${JOB_DEFAULTS.reduces}] [--name S] [--split-size 4MiB]
                 [--task-timeout 10s] [--max-attempts ${JOB_DEFAULTS.maxAttempts}] [--verify off|adaptive|all] [--wait] [--no-bundle]
                 [--skip-bad-records N]

${BUNDLE_NOTE}

An INPUT may be a directory: its files are sent, recursively, in path order, hidden files and
directories (a name starting with ".") skipped.
Prints the job id as the first line of stdout. With --wait, shows progress on stderr (a live
bar on a terminal, a line every 5 s otherwise) and exits 0 when the job succeeds, 1 when it fails
or is cancelled (with the reason). Ctrl-C stops waiting; the job keeps running.
--verify (default ${JOB_DEFAULTS.verify}): how results are checked against liars (README
"Verification"): all by two volunteers, by two until a volunteer has earned trust, or off (for a
job whose output is not deterministic).
For a job that declares \`export const records = 'lines'\`, --skip-bad-records N (at most
${MAX_SKIP_BAD_RECORDS}) lets up to N lines whose map throws be skipped and listed by \`tabreduce
status JOB\`; one more fails the job, naming it.
With --json, stdout is one JSON object per line: {"id": ...}, then with --wait the finished job.

Examples:
  tabreduce submit word-count.js books/*.txt --reduces 4 --wait
  tabreduce submit shared/examples/ts-word-count/job.ts books/*.txt --wait
  id=$(tabreduce submit grep.js logs/*.log) && tabreduce wait "$id"
  tabreduce submit word-count.js books/*.txt --json | jq -r .id`,
    admin.submit,
    {
      reduces: { type: 'string' },
      name: { type: 'string' },
      'split-size': { type: 'string' },
      'task-timeout': { type: 'string' },
      'max-attempts': { type: 'string' },
      verify: { type: 'string' },
      wait: { type: 'boolean' },
      'no-bundle': { type: 'boolean' },
      'skip-bad-records': { type: 'string' },
    },
  ),
  status: adminCommand(
    'all jobs, or one job in detail',
    `tabreduce status [JOB] [--json]

Without JOB, a table of the newest jobs; with JOB, its progress, records, attempts by outcome
and the 5 newest failures. --json prints the API's Job objects (with JOB, also its tasks and
its summary).

Examples:
  tabreduce status
  tabreduce status k3xq7w2m9pza
  tabreduce status --json | jq -r '.[] | select(.state == "failed") | .id'`,
    admin.status,
  ),
  wait: adminCommand(
    'wait for a job to finish, showing progress',
    `tabreduce wait JOB [--json]

Shows the job's progress on stderr until it ends. Exits 0 if it succeeded, 1 if it failed or was
cancelled. Ctrl-C stops waiting, not the job (exit 130). If the master is not up yet, or restarts
meanwhile, waits up to 2 minutes for it to answer. --json prints the finished job on stdout.

Examples:
  tabreduce wait k3xq7w2m9pza
  tabreduce wait k3xq7w2m9pza && tabreduce result k3xq7w2m9pza --out results/`,
    admin.wait,
  ),
  result: adminCommand(
    "print a job's output, or write it to a directory",
    `tabreduce result JOB [--out DIR]

Prints partitions 0..R-1 in order (key<TAB>value lines); --out writes DIR/part-00000,
part-00001, ... The output exists once the job has succeeded.

Examples:
  tabreduce result k3xq7w2m9pza | sort -t$'\\t' -k2 -nr | head
  tabreduce result k3xq7w2m9pza --out results/`,
    admin.result,
    { out: { type: 'string' } },
  ),
  cancel: adminCommand(
    'cancel a job',
    `tabreduce cancel JOB [--json]

Stops the job: its open tasks are cancelled and volunteers told to drop them. A finished job
cannot be cancelled (exit 2). --json prints the cancelled job.

Example:
  tabreduce cancel k3xq7w2m9pza`,
    admin.cancel,
  ),
  delete: adminCommand(
    'delete a finished job and its data',
    `tabreduce delete JOB [--json]

Deletes a finished (succeeded, failed or cancelled) job: its tasks, attempts and output, and the
disk they took. A queued or running job is refused (exit 2): cancel it first. Prints what was
freed on stderr; --json prints {"id", "freedBytes"} on stdout. \`tabreduce serve --retain 7d\`
deletes finished jobs by age instead.

Examples:
  tabreduce delete k3xq7w2m9pza
  tabreduce status --json | jq -r '.[] | select(.state == "failed") | .id' | xargs -n1 tabreduce delete`,
    admin.remove,
  ),
  workers: adminCommand(
    'list connected volunteers',
    `tabreduce workers [--json]

One line per volunteer (browser tab or tabreduce volunteer): threads, tasks in hand (running
or prefetched), tasks done, the current task, and when it was last heard from.

Examples:
  tabreduce workers
  tabreduce workers --json | jq 'map(.threads) | add'`,
    admin.workers,
  ),
  local: {
    summary: 'run a job sequentially in this process (the reference output)',
    usage: `tabreduce local JOB.ts|JOB.js INPUT... [--reduces ${JOB_DEFAULTS.reduces}] [--split-size 4MiB] [--out DIR]
                [--no-bundle] [--skip-bad-records N]

Runs the same module with the same splitting and engine as the distributed run, without a
master. Prints the output (partitions in order), or writes DIR/part-NNNNN with --out. An INPUT
may be a directory, as with submit. The module is bundled as submit bundles it (--no-bundle
imports it as it is).
For a job that declares \`export const records = 'lines'\`, --skip-bad-records N skips up to N
lines whose map throws (listed on stderr: file, line, its start, the error); one more fails the run.
The job's counters (ctx.count) are listed on stderr at the end, as \`tabreduce status JOB\` lists them.

Example:
  tabreduce local word-count.js books/*.txt --reduces 4 > expected.txt`,
    options: {
      reduces: { type: 'string' },
      'split-size': { type: 'string' },
      out: { type: 'string' },
      'no-bundle': { type: 'boolean' },
      'skip-bad-records': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    run: localCommand,
  },
  check: {
    summary: "check a job module as submit would, and its types with the project's own tsc",
    usage: `tabreduce check JOB.ts

Bundles the module as submit does (so it reports what submit would refuse), then runs the tsc of
the job's project (node_modules/.bin/tsc, looked for from the job's directory upward) with
--noEmit: on the nearest tsconfig.json, or on the job alone with strict defaults when there is
none. Exits 0 when all is well, 2 on type errors, a refused module, or no tsc installed.

Example:
  tabreduce check jobs/word-count.ts`,
    options: { help: { type: 'boolean', short: 'h' } },
    run: checkCommand,
  },
  volunteer: {
    summary: 'compute for a master from this machine (headless)',
    usage: `tabreduce volunteer [--server URL] [--threads N]

Joins the master like a browser tab does, with N worker threads (default: half the cores).
Reconnects by itself if the master restarts.

Example:
  tabreduce volunteer --server http://10.0.0.5:8080 --threads 4`,
    options: {
      server: { type: 'string' },
      threads: { type: 'string' },
      quiet: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    run: volunteerCommand,
  },
};

function rateFlag(v: string | boolean | undefined, name: string, fallback: number): number {
  if (v === undefined) return fallback;
  const n = typeof v === 'string' && /^(0|1)?(\.\d+)?$/.test(v) && v !== '' ? Number(v) : NaN;
  if (!(n >= 0 && n <= 1)) throw new UserError(`--${name} must be a number from 0 to 1, got ${JSON.stringify(v)}`);
  return n;
}

async function serveCommand(_args: string[], f: Flags): Promise<number> {
  const quiet = f['quiet'] === true;
  // Log lines quote volunteers (their failures' messages): shown, not acted on by the terminal.
  const log = (line: string) => {
    if (!quiet) process.stdout.write(`${new Date().toISOString()} ${stripControls(line, { multiline: true })}\n`);
  };
  const portText = (f['port'] as string | undefined) ?? String(SERVE_DEFAULTS.port);
  if (!/^\d+$/.test(portText) || Number(portText) > 65535)
    throw new UserError(`--port must be 0-65535, got ${portText}`);
  const retainMs = f['retain'] ? parseDuration(String(f['retain']), '--retain') : null;
  // Loaded here, not at the top: the other commands start without the master's modules.
  const { startMaster } = await import('./serve.js');
  const master = await startMaster({
    host: (f['host'] as string | undefined) ?? SERVE_DEFAULTS.host,
    port: Number(portText),
    data: (f['data'] as string | undefined) ?? SERVE_DEFAULTS.data,
    reassignAfterMs: f['reassign-after']
      ? parseDuration(String(f['reassign-after']), '--reassign-after')
      : SERVE_DEFAULTS.reassignAfterMs,
    heartbeatMs: f['heartbeat'] ? parseDuration(String(f['heartbeat']), '--heartbeat') : SERVE_DEFAULTS.heartbeatMs,
    tlsCert: f['tls-cert'] as string | undefined,
    tlsKey: f['tls-key'] as string | undefined,
    maxUploadBytes: f['max-upload']
      ? parseSize(String(f['max-upload']), '--max-upload')
      : SERVE_DEFAULTS.maxUploadBytes,
    maxMessageBytes: f['max-message']
      ? parseSize(String(f['max-message']), '--max-message')
      : SERVE_DEFAULTS.maxMessageBytes,
    maxPerIp: intFlag(f['max-per-ip'], 'max-per-ip', SERVE_DEFAULTS.maxPerIp),
    allowOrigins: ((f['allow-origin'] as string[] | undefined) ?? []).map((o) => parseOrigin(o)),
    retainMs,
    trustAfter: intFlag(f['trust-after'], 'trust-after', TRUST_AFTER),
    spotCheckRate: rateFlag(f['spot-check'], 'spot-check', SPOT_CHECK_RATE),
    log,
  });
  process.stdout.write(
    [
      `tabreduce master listening on ${master.url}`,
      `  volunteers: open ${master.url}/`,
      `  status:     ${master.url}/status`,
      `  admin token: ${master.tokenSource}`,
      retainMs === null
        ? '  finished jobs: kept until `tabreduce delete JOB`'
        : `  finished jobs: deleted ${formatDuration(retainMs)} after they finish (--retain)`,
      '',
    ].join('\n'),
  );
  await new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      log(`${sig}: shutting down`);
      void master.close().then(resolve);
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  return 0;
}

async function localCommand(args: string[], f: Flags): Promise<number> {
  const [modulePath, ...inputs] = args;
  if (!modulePath) throw new UserError('usage: tabreduce local JOB.js INPUT... (see tabreduce local --help)');
  const reduces = intFlag(f['reduces'], 'reduces', JOB_DEFAULTS.reduces);
  const splitSize = f['split-size'] ? parseSize(String(f['split-size']), '--split-size') : JOB_DEFAULTS.splitSize;
  const tty = process.stderr.isTTY === true;
  let counters: Record<string, number> = {};
  const parts = await runLocal(modulePath, inputs, {
    reduces,
    splitSize,
    bundle: f['no-bundle'] !== true,
    skipBadRecords: intFlag(f['skip-bad-records'], 'skip-bad-records', 0),
    onSkip: (r) => {
      // One line each: the error and where the job threw it, as `status JOB` lists them.
      const line = `skipped ${admin.skippedText({ ...r, input: r.key })}`;
      process.stderr.write(`${tty ? '\r\x1b[2K' : ''}${stripControls(line)}\n`);
    },
    onProgress: tty ? (done, total, phase) => process.stderr.write(`\r\x1b[2K${phase} ${done}/${total}`) : undefined,
    onCounters: (c) => (counters = c),
  });
  if (tty) process.stderr.write('\r\x1b[2K');
  // The counters as `tabreduce status JOB` lists them, on stderr so the output stays the output alone.
  const lines = admin.counterLines(counters);
  if (lines.length > 0) process.stderr.write(`${lines.join('\n')}\n`);
  const out = f['out'] as string | undefined;
  if (!out) {
    for (const p of parts) process.stdout.write(p);
    return 0;
  }
  await prepareOutDir(out);
  for (const [r, p] of parts.entries()) await writeOutFile(join(out, `part-${String(r).padStart(5, '0')}`), p);
  return 0;
}

async function checkCommand(args: string[]): Promise<number> {
  if (args.length !== 1) throw new UserError('usage: tabreduce check JOB.ts (see tabreduce check --help)');
  return checkJob(args[0]!);
}

async function volunteerCommand(_args: string[], f: Flags): Promise<number> {
  const server = resolveServer(f['server'] as string | undefined);
  const threads = intFlag(f['threads'], 'threads', defaultThreads());
  if (threads < 1 || threads > 256) throw new UserError('--threads must be from 1 to 256');
  const quiet = f['quiet'] === true;
  const log = (line: string) => {
    if (!quiet) process.stderr.write(`${new Date().toISOString()} ${stripControls(line, { multiline: true })}\n`);
  };
  let lastState = '';
  const { startNodeVolunteer } = await import('./volunteer/node-volunteer.js');
  const v = startNodeVolunteer({
    server,
    threads,
    log,
    onChange: (s) => {
      if (s.state === lastState) return;
      lastState = s.state;
      if (s.state === 'reconnecting')
        log(`not connected (${s.lastError ?? 'connection closed'}); retrying in ${s.retryInMs}ms`);
    },
  });
  log(`volunteering for ${server} with ${threads} thread${threads === 1 ? '' : 's'}; Ctrl-C to stop`);
  await new Promise<void>((resolve) => {
    const stop = () => {
      v.stop();
      resolve();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  const s = v.session.snapshot();
  log(`stopped after ${s.done} tasks`);
  for (const [phase, t] of Object.entries(s.stages)) {
    if (t.tasks === 0) continue;
    log(
      `its ${t.tasks} ${phase} results took: input fetch ${Math.round(t.fetchMs)} ms, run ${Math.round(t.runMs)} ms ` +
        `(waiting for a thread ${Math.round(t.queueMs)} ms, job code ${Math.round(t.computeMs)} ms), ` +
        `report ${Math.round(t.reportMs)} ms`,
    );
  }
  return 0;
}

function mainHelp(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((k) => k.length));
  const list = Object.entries(COMMANDS)
    .map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`)
    .join('\n');
  return `tabreduce: MapReduce on volunteers' browser tabs

Usage: tabreduce COMMAND [ARGS] [--help]

Commands:
${list}

\`tabreduce COMMAND --help\` shows a command's flags and examples.

Exit codes: 0 success; 1 the job failed or was cancelled; 2 bad usage or input;
3 the master could not be reached, refused the token, or failed; 130 stopped by Ctrl-C.
`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  guardStdio({ keepRunning: name === 'serve' });
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(mainHelp());
    return name ? 0 : 2;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    process.stderr.write(`tabreduce: unknown command "${name}"\n\n${mainHelp()}`);
    return 2;
  }
  let parsed;
  try {
    parsed = parseArgs({ args: rest, options: cmd.options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UserError(
      `${toError(e).message.replace(/\. To specify a positional.*$/s, '')}\n\nusage: ${cmd.usage.split('\n')[0]}`,
    );
  }
  if (parsed.values['help']) {
    process.stdout.write(`Usage: ${cmd.usage}\n`);
    return 0;
  }
  return cmd.run(parsed.positionals, parsed.values as Flags);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    const err = toError(e);
    // Messages may quote the master's replies and job code's errors.
    const print = (text: string) => process.stderr.write(`tabreduce: ${stripControls(text, { multiline: true })}\n`);
    if (isClosedPipe(err)) {
      // The reader of stdout went away (`| head`): it has what it wanted.
      process.exitCode = 0;
    } else if (err instanceof UserError) {
      print(err.message);
      process.exitCode = 2;
    } else if (isFsError(err)) {
      // A path the user named that no command checked for this particular refusal.
      print(
        err.path ? `cannot ${err.syscall} ${err.path}: ${fsReason(err)}` : `${err.syscall} failed: ${fsReason(err)}`,
      );
      process.exitCode = 2;
    } else if (err instanceof LocalJobError) {
      print(err.message);
      process.exitCode = 1;
    } else if (err instanceof MasterError) {
      print(err.message);
      process.exitCode = 3;
    } else {
      print(`internal error: ${err.stack ?? err.message}`);
      process.exitCode = 3;
    }
  },
);

import type { Scheduler } from '../scheduler/index.js';
import type { Stores } from '../sql/index.js';
import { JOB_STATES } from '../../shared/states.js';

/** A label value as the exposition format writes it: backslash, quote and newline escaped. */
function label(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** Prometheus text exposition of the master's counters and gauges. */
export function renderMetrics(s: Scheduler, stores: Stores): string {
  const lines: string[] = [];
  const metric = (name: string, type: 'counter' | 'gauge', help: string, values: [string, number][]) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, v] of values) lines.push(`${name}${labels} ${v}`);
  };
  const c = s.counters;
  metric('tabreduce_attempts_total', 'counter', 'Task attempts by how they ended.', [
    ['{outcome="assigned"}', c.assigned],
    ['{outcome="succeeded"}', c.committed],
    ['{outcome="failed"}', c.failed],
    ['{outcome="lost"}', c.lost],
    ['{outcome="superseded"}', c.superseded],
    ['{outcome="voted"}', c.voted],
    ['{outcome="rejected"}', c.rejected],
  ]);
  metric('tabreduce_credit_seconds', 'gauge', "Volunteers' verified work, all identities together.", [
    ['', stores.trust.total() / 1000],
  ]);
  metric('tabreduce_results_refused_total', 'counter', 'Results refused: unknown or foreign lease.', [['', c.refused]]);
  metric('tabreduce_results_invalid_total', 'counter', 'Results refused as malformed.', [['', c.invalid]]);
  metric('tabreduce_group_commits_total', 'counter', 'SQLite transactions that carried volunteer frames.', [
    ['', s.commits.count],
  ]);
  metric('tabreduce_group_commit_seconds_total', 'counter', 'Time spent in their COMMITs.', [
    ['', s.commits.ms / 1000],
  ]);
  const counts = stores.jobs.countByState();
  metric(
    'tabreduce_jobs',
    'gauge',
    'Jobs by state.',
    JOB_STATES.map((st) => [`{state="${st}"}`, counts.get(st) ?? 0]),
  );
  metric(
    'tabreduce_stored_bytes',
    'gauge',
    'Bytes of job data kept: inputs until the maps are done, map outputs until a job ends, outputs until it is deleted.',
    [['', stores.jobs.storedTotal()]],
  );
  // Per job for unfinished jobs only: a finished job's figures stay in its API view, not in every scrape.
  const active = stores.jobs.active();
  metric(
    'tabreduce_job_counter',
    'gauge',
    "Unfinished jobs' own counters (ctx.count), summed over committed attempts.",
    active.flatMap((j) =>
      Object.entries(JSON.parse(j.counters) as Record<string, number>).map(([name, v]): [string, number] => [
        `{job="${label(j.id)}",name="${label(name)}"}`,
        v,
      ]),
    ),
  );
  metric(
    'tabreduce_job_records',
    'gauge',
    'Records of unfinished jobs: emitted by their maps (in) and written by their reduces (out).',
    active.flatMap((j): [string, number][] => [
      [`{job="${label(j.id)}",kind="in"}`, j.records_in],
      [`{job="${label(j.id)}",kind="out"}`, j.records_out],
    ]),
  );
  metric(
    'tabreduce_job_input_bytes',
    'gauge',
    'Input bytes of unfinished jobs.',
    active.map((j): [string, number] => [`{job="${label(j.id)}"}`, j.input_bytes]),
  );
  metric(
    'tabreduce_job_skipped_records',
    'gauge',
    'Lines unfinished jobs skipped because their map threw (--skip-bad-records).',
    active.filter((j) => j.skip_bad_records > 0).map((j): [string, number] => [`{job="${label(j.id)}"}`, j.skipped]),
  );
  const vs = [...s.volunteers.values()];
  metric('tabreduce_volunteers', 'gauge', 'Volunteers known to the master.', [
    ['{state="connected"}', vs.filter((v) => v.conn).length],
    ['{state="disconnected"}', vs.filter((v) => !v.conn).length],
  ]);
  metric('tabreduce_threads', 'gauge', 'Threads offered by connected volunteers.', [
    ['', vs.filter((v) => v.conn && !v.paused).reduce((n, v) => n + v.threads, 0)],
  ]);
  metric('tabreduce_running_attempts', 'gauge', 'Attempts running now.', [['', s.runningLeases().length]]);
  const mem = process.memoryUsage();
  metric('process_resident_memory_bytes', 'gauge', 'Resident memory of the master.', [['', mem.rss]]);
  return `${lines.join('\n')}\n`;
}

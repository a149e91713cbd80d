import type { Scheduler } from '../scheduler/index.js';
import type { Stores } from '../sql/index.js';
import { JOB_STATES } from '../../shared/states.js';

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

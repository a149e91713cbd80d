import type { Db } from '../db.js';

export function createOutputStore(db: Db) {
  const putMap = db.prepare('INSERT INTO map_result (job_id, map_idx, data) VALUES (?, ?, jsonb(?))');
  // JSONB is parsed once, at commit; picking one partition out of it skips the others unparsed.
  const reduceInput = db.prepare('SELECT data -> ? FROM map_result WHERE job_id = ? ORDER BY map_idx').pluck();
  const dropMaps = db.prepare('DELETE FROM map_result WHERE job_id = ?');
  const put = db.prepare('INSERT INTO output (job_id, part, data) VALUES (?, ?, ?)');
  const get = db.prepare('SELECT data FROM output WHERE job_id = ? AND part = ?').pluck();
  const all = db.prepare('SELECT data FROM output WHERE job_id = ? ORDER BY part').pluck();

  return {
    /** Stores a map task's output: the JSON text of its partitions, `[partition, ...]`. */
    putMap: (jobId: string, mapIdx: number, json: string) => putMap.run(jobId, mapIdx, json),
    /** Partition `part` of every map task that emitted into it, in map-task order, as JSON texts. */
    reduceInput: (jobId: string, part: number) =>
      (reduceInput.all(`$[${part}]`, jobId) as (string | null)[]).filter((p): p is string => p !== null && p !== '[]'),
    dropMaps: (jobId: string) => dropMaps.run(jobId),
    put: (jobId: string, part: number, text: string) => put.run(jobId, part, text),
    get: (jobId: string, part: number) => get.get(jobId, part) as string | undefined,
    all: (jobId: string) => all.all(jobId) as string[],
  };
}
export type OutputStore = ReturnType<typeof createOutputStore>;

import type { Db } from '../db.js';

export function createOutputStore(db: Db) {
  const putMap = db.prepare('INSERT INTO map_output (job_id, part, map_idx, data) VALUES (?, ?, ?, ?)');
  const reduceInput = db.prepare('SELECT data FROM map_output WHERE job_id = ? AND part = ? ORDER BY map_idx').pluck();
  const dropMaps = db.prepare('DELETE FROM map_output WHERE job_id = ?');
  const put = db.prepare('INSERT INTO output (job_id, part, data) VALUES (?, ?, ?)');
  const get = db.prepare('SELECT data FROM output WHERE job_id = ? AND part = ?').pluck();
  const all = db.prepare('SELECT data FROM output WHERE job_id = ? ORDER BY part').pluck();

  return {
    /** Stores one partition (JSON text) of a map task's output. Empty partitions are not stored. */
    putMap: (jobId: string, part: number, mapIdx: number, json: string) => putMap.run(jobId, part, mapIdx, json),
    /** Partition `part` of every map task, in map-task order, as JSON texts. */
    reduceInput: (jobId: string, part: number) => reduceInput.all(jobId, part) as string[],
    dropMaps: (jobId: string) => dropMaps.run(jobId),
    put: (jobId: string, part: number, text: string) => put.run(jobId, part, text),
    get: (jobId: string, part: number) => get.get(jobId, part) as string | undefined,
    all: (jobId: string) => all.all(jobId) as string[],
  };
}
export type OutputStore = ReturnType<typeof createOutputStore>;

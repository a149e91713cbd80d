/**
 * Map outputs of jobs that were running when the master was upgraded to the blob store were kept as
 * JSONB partitions (`map_result`); they are rewritten once, at start, as records in `map_data`.
 */
import type { Db } from '../db.js';
import { encodeMapOutput } from '../../shared/records.js';
import type { Partition } from '../../shared/engine.js';
import { MapOutputCheck, packOffsets } from '../output-check.js';

export function convertLegacyMapResults(db: Db, log: (line: string) => void): void {
  const exists = db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'map_result'`).get();
  if (!exists) return;
  const page = db.prepare(`SELECT m.job_id, m.map_idx, json(m.data) AS data, j.n_reduce FROM map_result m
    JOIN job j ON j.id = m.job_id LIMIT 500`);
  const next = () => page.all() as { job_id: string; map_idx: number; data: string; n_reduce: number }[];
  const insert = db.prepare(`INSERT OR REPLACE INTO map_data (job_id, map_idx, blob, data, bytes, offsets)
    VALUES (?, ?, NULL, ?, ?, ?)`);
  const remove = db.prepare('DELETE FROM map_result WHERE job_id = ? AND map_idx = ?');
  let n = 0;
  for (let rows = next(); rows.length > 0; rows = next()) {
    db.transaction(() => {
      for (const r of rows) {
        const data = Buffer.from(encodeMapOutput(JSON.parse(r.data) as Partition[]));
        const check = new MapOutputCheck(r.n_reduce);
        check.push(data);
        const s = check.end();
        insert.run(r.job_id, r.map_idx, data, s.bytes, packOffsets(s.offsets));
        remove.run(r.job_id, r.map_idx);
      }
    })();
    n += rows.length;
  }
  db.exec('DROP TABLE map_result');
  if (n > 0) log(`moved ${n} map outputs of unfinished jobs to the new layout`);
}

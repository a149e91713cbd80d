import type { Db } from '../db.js';

/** Where a piece of job data is: a blob in the blob store, or bytes kept in the row. */
export type Stored = { blob: string; data: null } | { blob: null; data: Buffer };

export interface MapData {
  job_id: string;
  map_idx: number;
  blob: string | null;
  data: Buffer | null;
  bytes: number;
  /** n_reduce + 1 little-endian float64 offsets (server/output-check.ts `packOffsets`). */
  offsets: Buffer;
}

export interface OutputRow {
  part: number;
  blob: string | null;
  bytes: number;
}

/**
 * A map task's share of one reduce partition: bytes `pair` (two float64s) of its output, and the
 * whole output when it is kept in the row and small (`SMALL_ROW_BYTES`), so the share is sliced
 * out of it rather than read with a query of its own.
 */
export interface MapSpan {
  map_idx: number;
  blob: string | null;
  pair: Buffer;
  data: Buffer | null;
}

/**
 * Map outputs kept in rows up to this size come whole with their spans: a job of many tiny map
 * tasks has 20,000 of them per reduce under `npm run bench -- load`, and a query each took 3 µs
 * more per row than slicing (a page of 1,000 rows then holds at most 4 MiB).
 */
const SMALL_ROW_BYTES = 4096;

export function createOutputStore(db: Db) {
  const putMap = db.prepare(`INSERT INTO map_data (job_id, map_idx, blob, data, bytes, offsets)
    VALUES (@job_id, @map_idx, @blob, @data, @bytes, @offsets)`);
  // Two offsets out of each row's list, without reading the rest of it or its data.
  const spans = db.prepare(`SELECT map_idx, blob, substr(offsets, @at, 16) AS pair,
    CASE WHEN blob IS NULL AND bytes <= ${SMALL_ROW_BYTES} THEN data END AS data FROM map_data
    WHERE job_id = @job_id AND map_idx > @after ORDER BY map_idx LIMIT @limit`);
  const offsetsPage = db.prepare(`SELECT map_idx, offsets FROM map_data
    WHERE job_id = @job_id AND map_idx > @after ORDER BY map_idx LIMIT @limit`);
  const mapSlice = db
    .prepare('SELECT substr(data, @start + 1, @length) FROM map_data WHERE job_id = @job_id AND map_idx = @map_idx')
    .pluck();
  const mapBlobs = db.prepare('SELECT blob FROM map_data WHERE job_id = ? AND blob IS NOT NULL').pluck();
  const mapBytes = db.prepare('SELECT coalesce(sum(bytes), 0) FROM map_data WHERE job_id = ?').pluck();
  const dropMaps = db.prepare('DELETE FROM map_data WHERE job_id = ?');
  const put = db.prepare(`INSERT INTO output_data (job_id, part, blob, data, bytes)
    VALUES (@job_id, @part, @blob, @data, @bytes)`);
  const parts = db.prepare('SELECT part, blob, bytes FROM output_data WHERE job_id = ? ORDER BY part');
  const part = db.prepare('SELECT part, blob, bytes FROM output_data WHERE job_id = ? AND part = ?');
  const partData = db.prepare('SELECT data FROM output_data WHERE job_id = ? AND part = ?').pluck();
  const dropMap = db.prepare('DELETE FROM map_data WHERE job_id = ? AND map_idx = ? RETURNING blob, bytes');
  const dropPart = db.prepare('DELETE FROM output_data WHERE job_id = ? AND part = ? RETURNING blob, bytes');
  const outputBlobs = db.prepare('SELECT blob FROM output_data WHERE job_id = ? AND blob IS NOT NULL').pluck();

  return {
    putMap: (row: MapData) => putMap.run(row),
    /** Up to `limit` map outputs after `after`, each with its span of partition `part` (and, if small, its data). */
    spans: (jobId: string, part: number, after: number, limit: number) =>
      spans.all({ job_id: jobId, at: part * 8 + 1, after, limit }) as MapSpan[],
    /** Up to `limit` map outputs' offsets after `after` (all partitions' sizes at once). */
    offsets: (jobId: string, after: number, limit: number) =>
      offsetsPage.all({ job_id: jobId, after, limit }) as { map_idx: number; offsets: Buffer }[],
    /** Bytes [start, start + length) of a map output kept in its row. */
    mapSlice: (jobId: string, mapIdx: number, start: number, length: number) =>
      (mapSlice.get({ job_id: jobId, map_idx: mapIdx, start, length }) as Buffer | null) ?? Buffer.alloc(0),
    mapBlobs: (jobId: string) => mapBlobs.all(jobId) as string[],
    mapBytes: (jobId: string) => mapBytes.get(jobId) as number,
    dropMaps: (jobId: string) => dropMaps.run(jobId),
    put: (row: { job_id: string; part: number; blob: string | null; data: Buffer | null; bytes: number }) =>
      put.run(row),
    parts: (jobId: string) => parts.all(jobId) as OutputRow[],
    part: (jobId: string, p: number) => part.get(jobId, p) as OutputRow | undefined,
    partData: (jobId: string, p: number) => (partData.get(jobId, p) as Buffer | null) ?? Buffer.alloc(0),
    /** Deletes one map output (a reopened task's); its blob, if any, is the caller's to discard. */
    dropMap: (jobId: string, mapIdx: number) =>
      dropMap.get(jobId, mapIdx) as { blob: string | null; bytes: number } | undefined,
    /** Deletes one output partition (a reopened task's). */
    dropPart: (jobId: string, p: number) =>
      dropPart.get(jobId, p) as { blob: string | null; bytes: number } | undefined,
    outputBlobs: (jobId: string) => outputBlobs.all(jobId) as string[],
  };
}
export type OutputStore = ReturnType<typeof createOutputStore>;

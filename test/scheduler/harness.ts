/**
 * The scheduler against a real SQLite file, with fake sockets and a clock the test moves: what every
 * test of a scheduler rule shares. `T.now` is the clock; `useScheduler()` gives each test a fresh
 * database.
 */
import { beforeEach, afterEach } from 'node:test';
import { join } from 'node:path';
import { openDatabase, type Db } from '../../server/db.js';
import { createStores, type Stores } from '../../server/sql/index.js';
import { Scheduler, type Connection, type SchedulerOptions, type Volunteer } from '../../server/scheduler/index.js';
import { insertJob, newJobId } from '../../server/submit-job.js';
import { stageInputs } from '../../server/receive-job.js';
import { LocalBlobStore } from '../../server/blobs/local-blob-store.js';
import { decodeRecords, encodeMapOutput } from '../../shared/records.js';
import { runMap, runReduce, asJobModule, type Partition } from '../../shared/engine.js';
import type { MasterMessage, TaskAssign } from '../../shared/protocol.js';
import { defaultPartition } from '../../shared/partition.js';
import type { VerifyMode } from '../../shared/states.js';
import { tempDir, removeTempDirs } from '../helpers/cluster.js';

const WORDS = `
export function map(key, value, emit) { for (const w of value.split(/\\s+/)) if (w) emit(w, '1'); }
export function reduce(key, values) { return String(values.length); }
`;
const mod = asJobModule({
  map: (_k: string, v: string, emit: (k: string, v: string) => void) => {
    for (const w of v.split(/\s+/)) if (w) emit(w, '1');
  },
  reduce: (_k: string, vs: string[]) => String(vs.length),
});

export class FakeConn implements Connection {
  sent: MasterMessage[] = [];
  closedWith: { code: number; reason: string } | null = null;
  send(text: string) {
    this.sent.push(JSON.parse(text) as MasterMessage);
  }
  close(code: number, reason: string) {
    this.closedWith = { code, reason };
  }
  assigns(): TaskAssign[] {
    return this.sent.filter((m): m is TaskAssign => m.type === 'task.assign');
  }
  of<T extends MasterMessage['type']>(type: T) {
    return this.sent.filter((m) => m.type === type) as Extract<MasterMessage, { type: T }>[];
  }
}

/** The test's database, stores and clock, fresh for each test. */
export const T = {
  db: undefined as unknown as Db,
  dir: '',
  stores: undefined as unknown as Stores,
  blobs: undefined as unknown as LocalBlobStore,
  now: 0,
};
const clock = { now: () => T.now };

/** Registers the hooks that give each test of the file its own database. */
export function useScheduler(): void {
  beforeEach(() => {
    T.dir = tempDir();
    T.db = openDatabase(join(T.dir, 'db.sqlite'));
    T.stores = createStores(T.db);
    T.blobs = new LocalBlobStore(join(T.dir, 'blobs'));
    T.now = 1_000_000;
  });
  afterEach(() => {
    T.db.close();
    removeTempDirs();
  });
}

export function newScheduler(opts: Partial<SchedulerOptions> = {}): Scheduler {
  return new Scheduler(T.db, T.stores, {
    clock,
    reassignAfterMs: 10_000,
    heartbeatMs: 2_000,
    blobs: T.blobs,
    ...opts,
  });
}

/** A volunteer says hello on a fake socket, from 127.0.0.1 unless `address` says otherwise. */
export function connect(
  s: Scheduler,
  threads = 1,
  slots = threads,
  ident?: { volunteerId: string; secret: string },
  running: string[] = [],
  address = '127.0.0.1',
) {
  const conn = new FakeConn();
  const v = s.hello(
    conn,
    { type: 'hello', protocol: 2, threads, slots, paused: false, agent: 'test', running, ...(ident ?? {}) },
    address,
  );
  return { conn, v };
}

/** A volunteer from `address` with one slot. */
export function connectFrom(s: Scheduler, address: string) {
  return connect(s, 1, 1, undefined, [], address);
}

/** `v` reports that the job's code threw on `task`. */
export function failTask(s: Scheduler, v: Volunteer, task: TaskAssign, message = 'boom') {
  s.handle(v, { type: 'task.fail', lease: task.lease, reason: 'threw', error: { name: 'Error', message } });
}

/** The text of a task's input (these tests' inputs are small enough to travel inside the assignment). */
export function inputText(task: TaskAssign): string {
  if (task.input.text === undefined) throw new Error(`task ${task.taskId}'s input is not inline`);
  return task.input.text;
}

export async function output(task: TaskAssign): Promise<string> {
  if (task.phase === 'map') {
    return encodeMapOutput((await runMap(mod, task.input.key, inputText(task), task.nReduce)).partitions);
  }
  return (await runReduce(mod, [decodeRecords(inputText(task))])).text;
}

/** `v` returns the right output for `task`. */
export async function complete(s: Scheduler, v: Volunteer, task: TaskAssign) {
  s.handle(v, {
    type: 'task.result',
    lease: task.lease,
    output: await output(task),
    stats: { ms: 1, recordsIn: 1, recordsOut: 1 },
  });
}

export async function resultOf(task: TaskAssign) {
  return { output: await output(task), stats: { ms: 1, recordsIn: 1, recordsOut: 1 } };
}

/** A result for a map task of one word, without awaiting the engine. */
export function r0(task: TaskAssign) {
  const parts: Partition[] = Array.from({ length: task.nReduce }, () => []);
  if (task.phase !== 'map') throw new Error('r0 is for map tasks');
  const word = inputText(task).trim();
  parts[defaultPartition(word, task.nReduce)]!.push([word, ['1']]);
  return { output: encodeMapOutput(parts), stats: { ms: 1, recordsIn: 1, recordsOut: 1 } };
}

/** Queues a word-count job over inputs given as texts. */
export async function submit(
  inputs: Record<string, string>,
  extra: Partial<{
    reduces: number;
    taskTimeoutMs: number;
    maxAttempts: number;
    splitSize: number;
    verify: VerifyMode;
  }> = {},
): Promise<string> {
  const id = newJobId();
  const splitSize = extra.splitSize ?? 1024;
  const staged = await stageInputs(
    T.blobs,
    id,
    Object.entries(inputs).map(([name, text]) => ({ name, bytes: Buffer.from(text) })),
    splitSize,
  );
  const spec = {
    id,
    moduleName: 'words.js',
    module: WORDS,
    inputs: staged,
    reduces: extra.reduces ?? 2,
    splitSize,
    taskTimeoutMs: extra.taskTimeoutMs ?? 10_000,
    maxAttempts: extra.maxAttempts ?? 4,
    // These tests are of the other rules, whose counts verification would change (verify.test.ts).
    verify: extra.verify ?? 'off',
  };
  await insertJob(T.stores, spec, T.now, T.stores.transaction);
  return id;
}

/** Makes the next COMMIT fail as a full disk would (the scheduler then reloads its state); says whether it has. */
export function failNextCommit(): () => boolean {
  const exec = T.db.exec.bind(T.db);
  let failed = false;
  T.db.exec = ((sql: string) => {
    if (sql === 'COMMIT' && !failed) {
      failed = true;
      throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
    }
    return exec(sql);
  }) as typeof T.db.exec;
  return () => failed;
}

/** A job's output partitions as texts (kept in their rows: these tests' outputs are small). */
export function outputTexts(id: string): string[] {
  return T.stores.outputs.parts(id).map((p) => T.stores.outputs.partData(id, p.part).toString('utf8'));
}

/**
 * A pool of workers (Web Workers in a tab, worker threads in Node) that runs tasks with a hard time
 * limit. A worker whose code runs past the limit, or that dies, is terminated and replaced; the task
 * fails with a reason the master records. Runtime-neutral: the caller supplies how to make a worker.
 */
import { TaskFailure, type Executor, type ExecutorOutput, type ReadyTask } from './volunteer-session.js';

export interface PoolWorker {
  /** Runs a task; rejects with TaskFailure ('threw' for the job's errors, 'crashed' if the worker died). */
  run(task: ReadyTask): Promise<ExecutorOutput>;
  terminate(): void;
}

interface Job {
  task: ReadyTask;
  /** When it was queued (performance.now()). */
  queuedAt: number;
  resolve: (r: ExecutorOutput) => void;
  reject: (e: unknown) => void;
}

interface Slot {
  worker: PoolWorker;
  job: Job | null;
  timer: ReturnType<typeof setTimeout> | null;
}

export class WorkerPool implements Executor {
  private readonly slots: Slot[] = [];
  private readonly queue: Job[] = [];

  constructor(
    private readonly createWorker: () => PoolWorker,
    private threads: number,
    private readonly onEvent: (e: { kind: 'start' | 'end'; lease: string }) => void = () => {},
    /** Whether its workers take fetched inputs as bytes (Executor.takesBytes). */
    readonly takesBytes = false,
  ) {}

  run(task: ReadyTask): Promise<ExecutorOutput> {
    return new Promise((resolve, reject) => {
      this.queue.push({ task, resolve, reject, queuedAt: performance.now() });
      this.pump();
    });
  }

  cancel(lease: string): void {
    const q = this.queue.findIndex((j) => j.task.lease === lease);
    if (q >= 0) {
      this.queue.splice(q, 1);
      return;
    }
    const slot = this.slots.find((s) => s.job?.task.lease === lease);
    if (slot) this.replace(slot, null);
  }

  setThreads(n: number): void {
    this.threads = n;
    // Idle workers above the new count go now; busy ones finish their task first (see finish()).
    for (const s of [...this.slots]) {
      if (this.slots.length <= n) break;
      if (!s.job) this.retire(s);
    }
    this.pump();
  }

  /** Tasks running or waiting. */
  size(): number {
    return this.queue.length + this.slots.filter((s) => s.job).length;
  }

  terminateAll(): void {
    for (const s of [...this.slots]) this.retire(s);
    this.queue.length = 0;
  }

  private pump(): void {
    while (this.queue.length > 0) {
      let slot = this.slots.find((s) => !s.job);
      if (!slot) {
        if (this.slots.length >= this.threads) return;
        slot = { worker: this.createWorker(), job: null, timer: null };
        this.slots.push(slot);
      }
      this.start(slot, this.queue.shift()!);
    }
  }

  private start(slot: Slot, job: Job): void {
    slot.job = job;
    const queuedMs = performance.now() - job.queuedAt;
    const { lease, hardLimitMs } = job.task;
    this.onEvent({ kind: 'start', lease });
    slot.timer = setTimeout(() => {
      const secs = (hardLimitMs / 1000).toFixed(hardLimitMs < 10_000 ? 1 : 0);
      this.replace(
        slot,
        new TaskFailure('timeout', {
          name: 'TimeoutError',
          message: `the job's code was still running after ${secs}s, its time limit; its worker was stopped`,
        }),
      );
    }, hardLimitMs);
    const worker = slot.worker;
    worker.run(job.task).then(
      (out) => {
        if (slot.job === job && slot.worker === worker) this.finish(slot, () => job.resolve({ ...out, queuedMs }));
      },
      (e: unknown) => {
        if (slot.job !== job || slot.worker !== worker) return;
        if (e instanceof TaskFailure && e.reason === 'crashed') this.replace(slot, e);
        else this.finish(slot, () => job.reject(e));
      },
    );
  }

  private finish(slot: Slot, settle: () => void): void {
    const lease = slot.job!.task.lease;
    if (slot.timer) clearTimeout(slot.timer);
    slot.job = null;
    slot.timer = null;
    this.onEvent({ kind: 'end', lease });
    settle();
    if (this.slots.length > this.threads) this.retire(slot);
    this.pump();
  }

  /** Kills a slot's worker (runaway, crashed or cancelled task) and puts a fresh one in its place. */
  private replace(slot: Slot, failure: TaskFailure | null): void {
    const job = slot.job;
    if (slot.timer) clearTimeout(slot.timer);
    slot.worker.terminate();
    slot.job = null;
    slot.timer = null;
    const i = this.slots.indexOf(slot);
    if (i >= 0) this.slots.splice(i, 1);
    if (job) {
      this.onEvent({ kind: 'end', lease: job.task.lease });
      if (failure) job.reject(failure);
    }
    this.pump();
  }

  private retire(slot: Slot): void {
    if (slot.timer) clearTimeout(slot.timer);
    slot.worker.terminate();
    const i = this.slots.indexOf(slot);
    if (i >= 0) this.slots.splice(i, 1);
  }
}

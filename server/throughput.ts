import type { Clock, Scheduler } from './scheduler/index.js';
import type { ThroughputSample } from '../shared/api.js';

/** Committed tasks and input bytes per second over the last `keepSeconds`. */
export class ThroughputMeter {
  private samples: ThroughputSample[] = [];

  constructor(
    scheduler: Scheduler,
    private readonly clock: Clock,
    private readonly keepSeconds = 600,
  ) {
    scheduler.on((e) => {
      if (e.kind === 'commit') this.add(1, e.bytes);
    });
  }

  private add(tasks: number, bytes: number): void {
    const t = Math.floor(this.clock.now() / 1000) * 1000;
    const last = this.samples.at(-1);
    if (last && last.t === t) {
      last.tasks += tasks;
      last.bytes += bytes;
      return;
    }
    this.samples.push({ t, tasks, bytes });
    const cutoff = t - this.keepSeconds * 1000;
    while (this.samples.length > 0 && this.samples[0]!.t < cutoff) this.samples.shift();
  }

  recent(): ThroughputSample[] {
    return this.samples.slice();
  }

  /** Samples for second `t` and later: the last one sent may have grown since. */
  since(t: number): ThroughputSample[] {
    let i = this.samples.length;
    while (i > 0 && this.samples[i - 1]!.t >= t) i--;
    return this.samples.slice(i).map((s) => ({ ...s }));
  }
}

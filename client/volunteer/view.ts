/** What the page says about the tab's state, in words a visitor understands. */
import type { TaskInHand } from '../../shared/volunteer-session.js';
import { formatBytes, formatSeconds, plural } from './format.js';
import type { TabSnapshot } from './wire.js';

export type Tone = 'busy' | 'idle' | 'paused' | 'waiting' | 'error';

export interface Headline {
  tone: Tone;
  /** The connection, in a few words: Connecting…, Connected, Reconnecting in 3 s. */
  connection: string;
  /** What the tab is doing, in a word or two, for the window title. */
  short: string;
  title: string;
  detail: string;
}

/** Why the tab is paused: the visitor's button, or a rule they set. */
export type PausedBy = 'you' | 'hidden' | 'battery' | null;

const RULE_PAUSE = {
  hidden: {
    short: 'Paused (hidden)',
    title: 'Paused while this tab is hidden',
    detail: 'You chose to compute only while this tab is visible. It carries on when you come back to it.',
  },
  battery: {
    short: 'Paused (battery)',
    title: 'Paused on battery',
    detail: 'You chose to pause while this computer runs on battery. It carries on once it is plugged in.',
  },
} as const;

export function describe(
  s: TabSnapshot,
  fatal: string | null,
  retryInSeconds: number | null,
  pausedBy: PausedBy = s.paused ? 'you' : null,
): Headline {
  if (fatal) {
    return {
      tone: 'error',
      connection: 'Not running',
      short: 'Not running',
      title: "This browser can't volunteer",
      detail: fatal,
    };
  }
  if (s.state === 'connecting') {
    return {
      tone: 'waiting',
      connection: 'Connecting…',
      short: 'Connecting',
      title: 'Connecting to the server…',
      detail: 'This takes a moment. Nothing runs until the server hands this tab some work.',
    };
  }
  if (s.state === 'reconnecting' || s.state === 'stopped') {
    const when = retryInSeconds === null ? 'shortly' : retryInSeconds === 0 ? 'now' : `in ${retryInSeconds} s`;
    const kept = s.tasks.length > 0 ? ' Finished work is kept and sent as soon as the server answers.' : '';
    return {
      tone: 'waiting',
      connection: `Reconnecting ${when}`,
      short: 'Reconnecting',
      title: 'Lost touch with the server',
      detail: `Trying again ${when}.${kept}`,
    };
  }
  const connection = 'Connected';
  const working = s.tasks.length;
  if (s.paused && (pausedBy === 'hidden' || pausedBy === 'battery')) {
    const why = RULE_PAUSE[pausedBy];
    return {
      tone: 'paused',
      connection,
      short: why.short,
      title: working > 0 ? `${why.title}: finishing the ${plural(working, 'task')} in hand` : why.title,
      detail: why.detail,
    };
  }
  if (s.paused) {
    return working > 0
      ? {
          tone: 'paused',
          connection,
          short: 'Pausing',
          title: 'Pausing…',
          detail: `Finishing the ${plural(working, 'task')} in hand, then this tab takes no new work until you resume.`,
        }
      : {
          tone: 'paused',
          connection,
          short: 'Paused',
          title: 'Paused',
          detail: 'This tab takes no work and uses no processor time. Resume whenever you like.',
        };
  }
  if (working > 0) {
    return {
      tone: 'busy',
      connection,
      short: 'Computing',
      title: 'Your tab is computing',
      detail: `Working on ${plural(working, 'task')} right now. Thank you for helping!`,
    };
  }
  return {
    tone: 'idle',
    connection,
    short: 'Ready',
    title: 'Ready for work',
    detail:
      'Connected and waiting. The server has nothing for this tab at the moment, so it is using no processor time.',
  };
}

export interface TaskLine {
  lease: string;
  job: string;
  step: string;
  input: string;
  /** The input's size. */
  size: string;
  status: 'fetching' | 'waiting' | 'running' | 'reporting';
  statusText: string;
}

/** Map and reduce, said plainly. */
const STEPS = { map: 'Step 1 · map', reduce: 'Step 2 · reduce' } as const;

export function taskLines(s: TabSnapshot, now: number): TaskLine[] {
  const computing = new Set(s.computing);
  return s.tasks.map((t: TaskInHand) => {
    const status =
      t.status === 'fetching' || t.status === 'reporting' ? t.status : computing.has(t.lease) ? 'running' : 'waiting';
    const statusText =
      status === 'fetching'
        ? 'Getting the data'
        : status === 'reporting'
          ? 'Sending the result'
          : status === 'running'
            ? `Working · ${formatSeconds(now - t.startedAt)}`
            : 'Waiting for a free thread';
    return {
      lease: t.lease,
      job: t.jobName,
      step: STEPS[t.phase],
      input: t.phase === 'map' ? t.label : `part ${t.index + 1} of the results`,
      size: formatBytes(t.bytes),
      status,
      statusText,
    };
  });
}

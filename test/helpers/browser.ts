/**
 * Real Chromium tabs for the browser tests, through playwright-core: a tab opens the master's
 * volunteer page exactly as a visitor would, and the tests read the page's state from its DOM.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before } from 'node:test';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import type { TaskView } from '../../shared/api.js';
import { adminCli, apiGet, removeTempDirs, startMaster, until, type MasterProc } from './cluster.js';

export const CHROMIUM = process.env['CHROMIUM_PATH'] || '/usr/bin/chromium';
/** Headless Chromium as a root container allows it, quiet: no sandbox, GPU, updates or sync. */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

/** Screenshots land here, outside the repository, unless TABREDUCE_SCREENSHOTS names a directory. */
export const SCREENSHOT_DIR = process.env['TABREDUCE_SCREENSHOTS']
  ? resolve(process.env['TABREDUCE_SCREENSHOTS'])
  : join(tmpdir(), 'tabreduce-screenshots');

/** Fails (never skips) without a browser: a browser suite that skips silently proves nothing. */
export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium not found at ${CHROMIUM}: install it with \`apt-get install -y chromium\` or set CHROMIUM_PATH to a Chromium or Chrome binary`,
    );
  }
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}

/**
 * One Chromium for a test file and the masters its tests start, all stopped when the file ends.
 * Call at the top level of the file.
 */
export function browserSuite() {
  let browser: Browser | undefined;
  const masters: MasterProc[] = [];
  before(async () => {
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    for (const m of masters) await m.stop();
    removeTempDirs();
  });
  return {
    newContext: (options?: Parameters<Browser['newContext']>[0]) => browser!.newContext(options),
    async master(opts: Parameters<typeof startMaster>[0] = {}): Promise<MasterProc> {
      const m = await startMaster(opts);
      masters.push(m);
      return m;
    },
  };
}

export interface PageState {
  state: string;
  volunteer: string;
  paused: boolean;
  threads: number;
  done: number;
  inHand: number;
}

export interface Tab {
  page: Page;
  /** The volunteer id the page shows once connected. */
  id: string;
  state(): Promise<PageState>;
  close(): Promise<void>;
}

export async function readState(page: Page): Promise<PageState> {
  return page.locator('.page').evaluate((el: HTMLElement) => ({
    state: el.dataset['state'] ?? '',
    volunteer: el.dataset['volunteer'] ?? '',
    paused: el.dataset['paused'] === 'true',
    threads: Number(el.dataset['threads']),
    done: Number(el.dataset['done']),
    inHand: Number(el.dataset['inHand']),
  }));
}

/** Waits until the page says it is connected, and returns its volunteer id. */
export async function waitConnected(page: Page, timeoutMs = 15_000): Promise<string> {
  return until(
    'the tab to connect',
    async () => {
      const s = await readState(page);
      return s.state === 'connected' && s.volunteer ? s.volunteer : undefined;
    },
    timeoutMs,
  );
}

/** Opens the volunteer page of `m` in a new tab of `context` and waits for it to join. */
export async function openTab(context: BrowserContext, m: MasterProc, query = 'threads=1'): Promise<Tab> {
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${m.url}/?${query}`);
  let id: string;
  try {
    id = await waitConnected(page);
  } catch (e) {
    throw new Error(`${(e as Error).message}; page errors: ${errors.join('; ') || 'none'}`);
  }
  return {
    page,
    id,
    state: () => readState(page),
    close: () => page.close(),
  };
}

/** Opens `n` tabs at once (each is its own renderer process, so they load in parallel). */
export function openTabs(context: BrowserContext, m: MasterProc, n: number, query?: string): Promise<Tab[]> {
  return Promise.all(Array.from({ length: n }, () => openTab(context, m, query)));
}

export function screenshotPath(name: string): string {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  return join(SCREENSHOT_DIR, name);
}

/** The master's API as text (job output). */
export async function apiText(m: MasterProc, path: string): Promise<string> {
  const res = await fetch(`${m.url}${path}`, { headers: { authorization: `Bearer ${m.token}` } });
  if (!res.ok) throw new Error(`GET ${path}: HTTP ${res.status} ${await res.text()}`);
  return res.text();
}

/** `tabreduce submit` without --wait: the job id, or an error with the CLI's stderr. */
export async function submitJob(m: MasterProc, args: string[]): Promise<string> {
  const r = await adminCli(m)(['submit', ...args]);
  if (r.code !== 0) throw new Error(`submit failed (${r.code}): ${r.stderr}`);
  return r.stdout.split('\n')[0]!.trim();
}

export function tasksOf(m: MasterProc, jobId: string): Promise<TaskView[]> {
  return apiGet<TaskView[]>(m, `/api/jobs/${jobId}/tasks`);
}

/** Waits for a job to end (any final state) and returns its state. */
export async function waitJob(
  m: MasterProc,
  jobId: string,
  timeoutMs = 120_000,
): Promise<{ state: string; error: string | null }> {
  return until(
    `job ${jobId} to finish`,
    async () => {
      const j = await apiGet<{ state: string; error: string | null }>(m, `/api/jobs/${jobId}`);
      return ['succeeded', 'failed', 'cancelled'].includes(j.state) ? j : undefined;
    },
    timeoutMs,
    250,
  );
}

/**
 * Issue 15, "a tab computes as fast as Node": the same code (the shared engine's `runMap` with the
 * word-count example, bundled once by esbuild) run over the same text in this Node process and in a
 * dedicated Web Worker of headless Chromium, in alternating rounds, nothing else running. What is
 * left of a gap in `stages` and `tabs` is then not the engine's or V8's but the tab's surroundings.
 */
import { createServer, type Server } from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';
import { chromium, type Browser } from 'playwright-core';
import { corpusFiles, EXAMPLES, ROOT } from '../helpers/cluster.js';
import { CHROMIUM, CHROMIUM_ARGS } from '../helpers/browser.js';
import { commandFor, summarize, type BenchContext, type BenchReport, type Benchmark } from './bench-kit.js';

/** The engine and the job, as one script that defines `globalThis.mapAll(text, splitBytes, rounds)`. */
async function bundle(): Promise<string> {
  const entry = `
    import { runMap, asJobModule } from ${JSON.stringify(join(ROOT, 'shared/engine.ts'))};
    import * as job from ${JSON.stringify(join(EXAMPLES, 'word-count.js'))};
    const mod = asJobModule(job);
    globalThis.mapAll = async (text, splitChars, rounds) => {
      const ms = [];
      for (let r = 0; r < rounds; r++) {
        const t0 = performance.now();
        for (let i = 0; i < text.length; i += splitChars) await runMap(mod, 'k', text.slice(i, i + splitChars), 10);
        ms.push(performance.now() - t0);
      }
      return ms;
    };`;
  const out = await build({
    stdin: { contents: entry, resolveDir: ROOT, loader: 'ts' },
    bundle: true,
    format: 'iife',
    target: 'es2022',
    write: false,
    logLevel: 'silent',
  });
  return out.outputFiles[0]!.text;
}

async function run(ctx: BenchContext): Promise<BenchReport> {
  const megabytes = Number(ctx.options.get('megabytes') ?? 10);
  const rounds = Number(ctx.options.get('rounds') ?? 4);
  const pairs = Number(ctx.options.get('pairs') ?? 3);
  const corpus = corpusFiles()
    .map((f) => readFileSync(f, 'utf8'))
    .join('');
  let text = '';
  while (Buffer.byteLength(text) < megabytes * 1024 ** 2) text += corpus;
  const mb = Buffer.byteLength(text) / 1024 ** 2;
  const splitChars = 4 * 1024 * 1024;
  const script = await bundle();

  new Function(script)();
  const inNode = (globalThis as unknown as { mapAll: (t: string, s: number, r: number) => Promise<number[]> }).mapAll;

  let server: Server | null = null;
  let browser: Browser | null = null;
  try {
    const workerSource = `${script}\nonmessage = async (e) => postMessage(await mapAll(e.data.text, e.data.splitChars, e.data.rounds));`;
    server = createServer((req, res) => {
      const js = req.url === '/worker.js';
      res.writeHead(200, { 'content-type': js ? 'text/javascript' : 'text/html' });
      res.end(js ? workerSource : '<!doctype html><title>engine</title>');
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${port}/`);
    await page.evaluate(() => {
      (globalThis as unknown as { w: Worker }).w = new Worker('/worker.js');
    });
    const inTab = (t: string) =>
      page.evaluate(
        ({ t, splitChars, rounds }) =>
          new Promise<number[]>((ok) => {
            const w = (globalThis as unknown as { w: Worker }).w;
            w.onmessage = (e: MessageEvent<number[]>) => ok(e.data);
            w.postMessage({ text: t, splitChars, rounds });
          }),
        { t, splitChars, rounds },
      );

    const node: number[] = [];
    const tab: number[] = [];
    for (let i = 0; i < pairs; i++) {
      ctx.log(`engine: pair ${i + 1} of ${pairs}`);
      // The first round of each side warms its JIT; it is left out.
      node.push(...(await inNode(text, splitChars, rounds)).slice(1));
      tab.push(...(await inTab(text)).slice(1));
    }
    const rates = (ms: number[]) => ms.map((x) => mb / (x / 1000));
    const range = (r: number[]) => {
      const s = summarize(r);
      return { p50: s.p50, min: Math.min(...r), max: s.max };
    };
    const n = range(rates(node));
    const w = range(rates(tab));
    return {
      name: 'engine',
      title: 'the same engine code in Node and in a Chromium worker (issue 15)',
      command: commandFor('engine', ctx),
      setup: [
        `word-count's map (shared/examples) through the engine's runMap, bundled once by esbuild, over ${mb.toFixed(1)} MiB of the corpus in 4 MiB splits, 10 partitions`,
        `${pairs} pairs of ${rounds} rounds, Node then Chromium (${CHROMIUM}) in turn; the first round of each run warms up and is left out`,
        `Node ${process.versions.node} (V8 ${process.versions.v8}), Chromium ${browser.version()}`,
      ],
      rows: [
        {
          what: 'Node, this process',
          value: `p50 ${n.p50.toFixed(1)} MiB/s (${n.min.toFixed(1)}–${n.max.toFixed(1)})`,
        },
        {
          what: 'Chromium, a dedicated Web Worker',
          value: `p50 ${w.p50.toFixed(1)} MiB/s (${w.min.toFixed(1)}–${w.max.toFixed(1)})`,
        },
        {
          what: 'Chromium / Node (p50)',
          value: (w.p50 / n.p50).toFixed(2),
          target: '>= 0.9',
          met: w.p50 / n.p50 >= 0.9,
        },
      ],
      notes: [],
    };
  } finally {
    await browser?.close().catch(() => undefined);
    server?.close();
  }
}

export const engineBench: Benchmark = {
  name: 'engine',
  summary: 'the same engine code in Node and in a Chromium worker, alternating (--megabytes 10)',
  run,
};

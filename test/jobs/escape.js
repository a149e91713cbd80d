// Tries every way job code might reach out of a Node volunteer: Node's modules through import()
// hidden from the submit check (Function, indirect eval), require, process.binding and
// process.getBuiltinModule through the Function constructor, fetch, a raw TCP socket, reading a file
// (the admin token) and writing one. The input text names the targets, one per line:
//   read PATH · write PATH · http URL · tcp HOST PORT · exec
// Each attempt emits `reached <detail>` or `blocked <error>` under a key naming it. Under `tabreduce
// local` (plain Node, the control) every attempt reaches; in the sandbox none may.
const TIMEOUT_MS = 3000;

const dynamicImport = (specifier) => Function('s', 'return import(s)')(specifier);
const evalImport = (specifier) => (0, eval)(`import(${JSON.stringify(specifier)})`);
const hostProcess = () => {
  const p = Function('return typeof process === "undefined" ? undefined : process')();
  if (!p) throw new ReferenceError('process is not defined');
  return p;
};
const escapeProcess = () => {
  const p = globalThis.constructor.constructor('return this')().process;
  if (!p) throw new ReferenceError('no process behind the global object');
  return p;
};

async function requireFn() {
  if (typeof globalThis.require === 'function') return globalThis.require;
  const { createRequire } = await dynamicImport('node:module');
  return createRequire('file:///');
}

async function fsByAnyMeans() {
  return dynamicImport('node:fs');
}

function settle(attempt) {
  let timer;
  const timeout = new Promise((resolve) => (timer = setTimeout(() => resolve('blocked timeout'), TIMEOUT_MS)));
  const result = Promise.resolve()
    .then(attempt)
    .then(
      (detail) => `reached ${String(detail).slice(0, 80)}`,
      (e) => `blocked ${e && e.name ? e.name : 'Error'}: ${e && e.message ? e.message : String(e)}`,
    );
  return Promise.race([result, timeout]).finally(() => clearTimeout(timer));
}

function tcp(net, host, port) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), host, () => {
      socket.write(`GET /tcp HTTP/1.0\r\nHost: ${host}\r\n\r\n`);
    });
    socket.on('data', (d) => {
      resolve(`tcp ${String(d).split('\r\n')[0]}`);
      socket.destroy();
    });
    socket.on('error', reject);
  });
}

export async function map(key, value, emit) {
  const probe = async (name, attempt) => emit(name, await settle(attempt));
  for (const line of value.split('\n')) {
    const [kind, a, b] = line.trim().split(/\s+/);
    if (kind === 'read') {
      await probe(
        'read via Function import()',
        async () => (await dynamicImport('node:fs')).readFileSync(a, 'utf8').length,
      );
      await probe('read via eval import()', async () => (await evalImport('node:fs')).readFileSync(a, 'utf8').length);
      await probe('read via require', async () => (await requireFn())('fs').readFileSync(a, 'utf8').length);
      await probe(
        'read via process.getBuiltinModule',
        () => hostProcess().getBuiltinModule('fs').readFileSync(a, 'utf8').length,
      );
      await probe(
        'read via constructor escape',
        () => escapeProcess().getBuiltinModule('fs').readFileSync(a, 'utf8').length,
      );
      await probe('process.binding', () => typeof hostProcess().binding('fs').open);
    } else if (kind === 'write') {
      await probe('write', async () => {
        (await fsByAnyMeans()).writeFileSync(a, 'written by job code\n');
        return 'wrote the file';
      });
    } else if (kind === 'exec') {
      await probe('child_process', async () => (await dynamicImport('node:child_process')).execSync('id').toString());
    } else if (kind === 'http') {
      await probe('fetch', async () => `fetch ${(await fetch(a)).status}`);
    } else if (kind === 'tcp') {
      await probe('net', async () => tcp(await dynamicImport('node:net'), a, b));
    }
  }
}

export function reduce(key, values) {
  return values.join(' | ');
}

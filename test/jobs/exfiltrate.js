// Tries to reach another origin in every way a Web Worker can. The input text holds the targets:
// lines `http URL` and `ws URL`. Emits one record per attempt: `blocked <error>` or `reached <detail>`,
// and under the key `violations` the Content-Security-Policy violations the worker saw, so a test can
// tell a request the policy refused from one that merely failed. The control line `self PATH`
// fetches from the master itself, which must work.
const TIMEOUT_MS = 3000;

const violations = new Set();
self.addEventListener('securitypolicyviolation', (e) => violations.add(`${e.effectiveDirective} ${e.blockedURI}`));

const indirectEval = globalThis['ev' + 'al'];

function settle(promise) {
  return Promise.race([
    promise.then(
      (detail) => `reached ${detail}`,
      (e) => `blocked ${e && e.name ? e.name : 'Error'}: ${e && e.message ? e.message : String(e)}`,
    ),
    new Promise((resolve) => setTimeout(() => resolve('blocked timeout'), TIMEOUT_MS)),
  ]);
}

function xhr(url) {
  return new Promise((resolve, reject) => {
    const req = new XMLHttpRequest();
    req.open('GET', url);
    req.onload = () => resolve(`xhr ${req.status}`);
    req.onerror = () => reject(new Error('xhr network error'));
    req.send();
  });
}

function socket(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.onopen = () => resolve('websocket open');
    ws.onerror = () => reject(new Error('websocket error'));
  });
}

async function webTransport(url) {
  const wt = new WebTransport(url);
  await wt.ready;
  return 'webtransport ready';
}

function eventSource(url) {
  return new Promise((resolve, reject) => {
    const es = new EventSource(url);
    es.onopen = () => resolve('eventsource open');
    es.onerror = () => {
      es.close();
      reject(new Error('eventsource error'));
    };
  });
}

export async function map(key, value, emit) {
  for (const line of value.split('\n')) {
    const [kind, target] = line.trim().split(/\s+/);
    if (!target) continue;
    if (kind === 'self') {
      emit('self fetch', await settle(fetch(target).then((r) => `fetch ${r.status}`)));
    } else if (kind === 'http') {
      emit('fetch', await settle(fetch(target).then((r) => `fetch ${r.status}`)));
      emit('fetch no-cors', await settle(fetch(target, { mode: 'no-cors' }).then((r) => `fetch ${r.type}`)));
      emit('xhr', await settle(xhr(target)));
      emit('eventsource', await settle(eventSource(target)));
      // The submit check refuses import() written in a module, so code can reach it only by
      // evaluating a string, which the worker's policy (no 'unsafe-eval') refuses in turn.
      emit('import', await settle(Promise.resolve().then(() => indirectEval(`import(${JSON.stringify(target)})`))));
      const secure = target.replace(/^http:/, 'https:');
      emit('webtransport', await settle(Promise.resolve().then(() => webTransport(secure))));
    } else if (kind === 'ws') {
      emit('websocket', await settle(Promise.resolve().then(() => socket(target))));
    }
  }
  // Violation events are queued as tasks; let them arrive.
  await new Promise((resolve) => setTimeout(resolve, 100));
  emit('violations', [...violations].sort().join(' ; ') || 'none');
}

export function reduce(key, values) {
  return values.join(' | ');
}

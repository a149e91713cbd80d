/**
 * Which web pages may open the volunteer socket. Browsers let any page open a WebSocket to any
 * host, sending the page's origin; without this check a page the admin merely visits could join a
 * master on localhost as a volunteer and receive every job's inputs.
 */
import { UserError } from '../shared/errors.js';

export interface OriginPolicy {
  /** Origins admitted besides the master's own (`serve --allow-origin`), normalised by parseOrigin. */
  allowed: readonly string[];
  /** The master listens on a loopback address only, so its own pages have loopback names. */
  loopbackOnly: boolean;
}

/** `--allow-origin URL`: scheme, host and port only, normalised as a browser sends it. */
export function parseOrigin(text: string, flag = '--allow-origin'): string {
  let url: URL | null = null;
  try {
    url = new URL(text);
  } catch {
    // reported below
  }
  if (
    !url ||
    (url.protocol !== 'http:' && url.protocol !== 'https:') ||
    url.username ||
    url.password ||
    url.pathname !== '/' ||
    url.search ||
    url.hash
  ) {
    throw new UserError(
      `${flag}: ${JSON.stringify(text)} is not an origin: give scheme, host and port as in http://host:8080`,
    );
  }
  return url.origin;
}

/** True for the names a loopback-only master can be reached by: localhost, 127.0.0.0/8, [::1]. */
export function isLoopbackName(hostname: string): boolean {
  const h = hostname.toLowerCase();
  return h === 'localhost' || h === '[::1]' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h);
}

/**
 * Why a WebSocket upgrade with this `Origin` and `Host` is refused, or null to admit it. No Origin:
 * not a browser (browsers always send one), so a Node volunteer, admitted. Otherwise the page must be
 * on an allowed origin, or be the master's own: Origin's host:port equal to the request's Host, which
 * holds whatever the browser was pointed at (127.0.0.1 or localhost, any interface of a 0.0.0.0
 * master, a reverse proxy that passes Host on), under either scheme (TLS may end at a proxy). A
 * loopback-only master also wants a loopback name: a DNS-rebinding page (evil.example resolved to
 * 127.0.0.1) has Host and Origin agree on a name that is not the master's.
 */
export function originRefusal(
  origin: string | undefined,
  host: string | undefined,
  policy: OriginPolicy,
): string | null {
  if (origin === undefined) return null;
  let page: URL;
  try {
    page = new URL(origin);
  } catch {
    return `origin ${JSON.stringify(origin.slice(0, 200))} may not volunteer here`;
  }
  if (page.protocol !== 'http:' && page.protocol !== 'https:') {
    return `origin ${JSON.stringify(origin.slice(0, 200))} may not volunteer here`;
  }
  if (policy.allowed.includes(page.origin)) return null;
  const admit = `its operator can admit it with tabreduce serve --allow-origin ${page.origin}`;
  let own: string | null = null;
  try {
    own = host ? new URL(`${page.protocol}//${host}`).host : null;
  } catch {
    // an unparsable Host is no one's
  }
  if (page.host !== own) {
    return `origin ${page.origin} may not volunteer here: it is not this master's (${own ?? 'no Host'}); ${admit}`;
  }
  if (policy.loopbackOnly && !isLoopbackName(page.hostname)) {
    return `origin ${page.origin} may not volunteer here: this master listens on loopback only, and ${page.hostname} is not a loopback name; ${admit}`;
  }
  return null;
}

/** Refuses an upgrade's origin or admits it (null); see originRefusal. */
export type OriginGate = (origin: string | undefined, host: string | undefined) => string | null;

/** Distinct refused origins logged; past this a page cycling through origins cannot fill the log. */
const LOGGED_ORIGINS = 100;

/**
 * originRefusal with the policy fixed, logging the first refusal of each origin, so an operator
 * whose proxy rewrites Host, or whose page lives elsewhere, learns why its volunteers cannot join.
 */
export function createOriginGate(policy: OriginPolicy, log: (line: string) => void): OriginGate {
  const logged = new Set<string>();
  return (origin, host) => {
    const refusal = originRefusal(origin, host, policy);
    if (refusal && origin !== undefined && logged.size < LOGGED_ORIGINS && !logged.has(origin)) {
      logged.add(origin);
      log(`refused a volunteer socket: ${refusal}`);
    }
    return refusal;
  };
}

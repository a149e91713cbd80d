import { UserError } from '../../shared/errors.js';
import {
  DEFAULT_SERVER,
  defaultServer,
  defaultToken,
  MasterUnreachableError,
  Tabreduce,
  TabreduceError,
  TokenRefusedError,
} from '../client/index.js';

export { DEFAULT_SERVER };

/** A failure talking to the master (unreachable, refused token, server error): exit code 3. */
export class MasterError extends Error {
  override name = 'MasterError';
}

export interface AdminTarget {
  server: string;
  token: string | undefined;
  /** Where the token came from, for the hint when the master refuses it. */
  tokenFrom?: string;
  /** The client the commands call the master with. */
  client: Tabreduce;
}

/** --token, else TABREDUCE_TOKEN, else ./data/admin-token when readable; and which it was. */
export function resolveToken(flag: string | undefined): { token: string | undefined; from?: string } {
  if (flag) return { token: flag, from: '--token' };
  return defaultToken();
}

export function resolveServer(flag: string | undefined): string {
  const server = flag ?? defaultServer();
  try {
    const u = new URL(server);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not http');
  } catch {
    throw new UserError(`--server must be an http:// or https:// URL, got ${JSON.stringify(server)}`);
  }
  return server.replace(/\/+$/, '');
}

/** The master and token the flags name, with a client for them. */
export function adminTarget(serverFlag: string | undefined, tokenFlag: string | undefined): AdminTarget {
  const server = resolveServer(serverFlag);
  const { token, from } = resolveToken(tokenFlag);
  return { server, token, tokenFrom: from, client: new Tabreduce({ server, token }) };
}

/**
 * The client's errors as the CLI tells them: what to do next, with its flags. A refusal of the
 * request (4xx) is the user's to fix (exit 2); the master unreachable or failing is exit 3.
 */
export function cliError(e: unknown, t: AdminTarget): unknown {
  if (!(e instanceof TabreduceError)) return e;
  if (e instanceof MasterUnreachableError) {
    return new MasterError(
      `${e.message}. Is it running? Start one with \`npm start\` or \`tabreduce serve\`, or point at it with --server / TABREDUCE_URL.`,
    );
  }
  if (e instanceof TokenRefusedError) {
    return new MasterError(
      e.tokenSent
        ? `the master refused the admin token${t.tokenFrom ? ` from ${t.tokenFrom}` : ''}. Its own is in the file named on the "admin token:" line it printed at start (DATA/admin-token, DATA being its --data directory, ./data by default), or is the TABREDUCE_TOKEN it was started with: pass that with --token or TABREDUCE_TOKEN.`
        : `no admin token: pass --token, set TABREDUCE_TOKEN, or run from the directory whose data/admin-token the master created (the master prints its path on the "admin token:" line at start).`,
    );
  }
  if (e.status !== null && e.status >= 500) return new MasterError(`the master failed: ${e.message}`);
  if (e.status === 404 && e.path.startsWith('/api/jobs/')) {
    return new UserError(`${e.message} on ${t.server}; \`tabreduce status\` lists its jobs`);
  }
  return new UserError(e.message);
}

import { HTTPException } from 'hono/http-exception';
import type { Context } from 'hono';
import { toError, UserError } from '../shared/errors.js';
import { isStorageError, STORAGE_FULL_MESSAGE } from './storage-errors.js';

export function badRequest(message: string): HTTPException {
  return new HTTPException(400, { message });
}

export function notFound(what: string): HTTPException {
  return new HTTPException(404, { message: what });
}

/** The request is right but the resource's state refuses it now (a running job cannot be deleted). */
export function conflict(message: string): HTTPException {
  return new HTTPException(409, { message });
}

/** The one place that turns errors into HTTP responses: `{"error": "..."}` with a fitting status. */
export function errorResponse(e: unknown, c: Context, log: (line: string) => void): Response {
  if (e instanceof HTTPException) return c.json({ error: e.message || 'request refused' }, e.status);
  if (e instanceof UserError) return c.json({ error: e.message }, 400);
  const err = toError(e);
  if (isStorageError(e)) {
    log(`storage error on ${c.req.method} ${c.req.path}: ${err.message}`);
    return c.json({ error: `${STORAGE_FULL_MESSAGE} (${err.message})` }, 507);
  }
  log(`internal error on ${c.req.method} ${c.req.path}: ${err.stack ?? err.message}`);
  return c.json({ error: `internal error: ${err.message}` }, 500);
}

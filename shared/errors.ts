/** Errors cross worker and socket boundaries as plain objects, as Comlink does. */
export interface SerializedError {
  name: string;
  message: string;
  stack?: string;
}

/** Every `catch (e)` goes through here: whatever was thrown becomes an Error. */
export function toError(e: unknown): Error {
  if (e instanceof Error) return e;
  if (typeof e === 'object' && e !== null && 'message' in e) {
    const o = e as { name?: unknown; message?: unknown; stack?: unknown };
    const err = new Error(String(o.message));
    if (typeof o.name === 'string') err.name = o.name;
    if (typeof o.stack === 'string') err.stack = o.stack;
    return err;
  }
  return new Error(typeof e === 'string' ? e : `non-error thrown: ${String(e)}`);
}

export function serializeError(e: unknown): SerializedError {
  const err = toError(e);
  return { name: err.name, message: err.message, stack: err.stack };
}

/** A mistake of the person at the keyboard: reported without a stack trace. */
export class UserError extends Error {
  override name = 'UserError';
}

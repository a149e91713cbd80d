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

/**
 * An error as one block of text: "Name: message", then the stack. V8 stacks open with that same line,
 * so it is shown once; Firefox and Safari stacks open at the first frame and get it added.
 */
export function describeError(error: SerializedError): string {
  const head = `${error.name}: ${error.message}`;
  const stack = error.stack ?? '';
  const trace = stack.startsWith(head) ? stack.slice(head.length).replace(/^\n/, '') : stack;
  return trace ? `${head}\n${trace}` : head;
}

/** Where a stack's first frame is (`job.ts:12:5`), or null: a one-line report names it. */
export function errorLocation(stack: string | undefined): string | null {
  return /\n\s+at (?:.*\()?([^()\s]+:\d+:\d+)\)?/.exec(stack ?? '')?.[1] ?? null;
}

/** A mistake of the person at the keyboard: reported without a stack trace. */
export class UserError extends Error {
  override name = 'UserError';
}

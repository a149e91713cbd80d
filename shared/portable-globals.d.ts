/**
 * The only globals `shared/` may use: what browsers, Web Workers and Node all provide. Checked by
 * `tsconfig.shared.json` (no DOM, no Node types), so an accidental `document` or `Buffer` here fails
 * `npm run check`. Not part of the main build, which has the full DOM and Node types.
 */
declare function setTimeout(fn: () => void, ms?: number): number;
declare function clearTimeout(handle: number | null | undefined): void;
declare function setInterval(fn: () => void, ms?: number): number;
declare function clearInterval(handle: number | null | undefined): void;
declare const performance: { now(): number };
declare class TextEncoder {
  encode(input?: string): Uint8Array;
}
declare class TextDecoder {
  constructor(label?: string, options?: { fatal?: boolean; ignoreBOM?: boolean });
  decode(input?: Uint8Array, options?: { stream?: boolean }): string;
}
interface AbortSignal {
  readonly aborted: boolean;
  addEventListener(type: 'abort', listener: () => void): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}
declare class AbortController {
  readonly signal: AbortSignal;
  abort(reason?: unknown): void;
}
declare function fetch(
  url: string,
  init?: { method?: string; headers?: Record<string, string>; body?: string | Uint8Array; signal?: AbortSignal },
): Promise<{ readonly status: number; text(): Promise<string>; arrayBuffer(): Promise<ArrayBuffer> }>;

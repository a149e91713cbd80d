/**
 * `tabreduce serve`'s defaults, apart from the master itself: the CLI's help shows them without
 * loading the master (its HTTP server, database and scheduler), so every other command starts faster.
 */
export const SERVE_DEFAULTS = Object.freeze({
  host: '127.0.0.1',
  port: 8080,
  data: './data',
  reassignAfterMs: 10_000,
  heartbeatMs: 2_000,
  maxUploadBytes: 100 * 1024 ** 3,
  /**
   * Results travel in frames. A map output of a 4 MiB split is well under 1 MiB for the word count
   * (combined) and at most ~5 MiB for a grep that keeps every line; 16 MiB leaves room, while every
   * frame still costs the event loop a few milliseconds to receive (`npm run bench -- frames`). A
   * larger result fails its task naming this flag.
   */
  maxMessageBytes: 1024 ** 2,
  /** Enough for a classroom or office behind one NAT; a flood from one host stops here. */
  maxPerIp: 1024,
});

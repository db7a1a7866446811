/**
 * Defaults that `waxflow run`'s configuration (cli/config.ts) shares with the parts that
 * use them, here so that resolving a configuration loads none of those parts: the CLI
 * resolves it first thing, to start its worker threads (cli/prestart.ts).
 */

/** Bytewax's default epoch length when recovery is off. */
export const DEFAULT_EPOCH_INTERVAL_MS = 10_000;
/** How long a start waits for peers, and for holders of missing recovery stores. */
export const DEFAULT_START_TIMEOUT_MS = 60_000;
/**
 * A peer silent for this long is declared lost. A crashed process is noticed at once, by
 * its closed connection; this only catches a peer that hangs or becomes unreachable, so it
 * leaves room for a process starved of CPU.
 */
export const DEFAULT_PEER_TIMEOUT_MS = 15_000;

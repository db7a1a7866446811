/**
 * Backups of the recovery store to a real S3-compatible store (SeaweedFS, built by
 * e2e/toolchain/seaweedfs.sh), measured once end to end:
 * - the stateful count over 200k keys with 1 s snapshots, backups every 10 s vs no bucket,
 *   in 3 pairs of 20 s runs, off and on alternated (ABBA order, so a drift of the machine's
 *   load between runs weighs on both sides): the median pair's throughput ratio (target >=
 *   0.95, shown as a time ratio <= 1/0.95), each run's throughput taken over one backup
 *   interval (9.5–19.5 s) that holds the backup of epoch 10 whole, so it is the steady
 *   state's cost of one backup per interval, not a start-up or a wait at the end. One 45 s
 *   pair was mostly noise (backups off alone ranged 768k–1045k items/s between runs);
 * - restoring 1M keys: download and verify the set into an empty directory, then resume
 *   from it (one more item shows the state came back);
 * - bytes per key in the backup.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { Dataflow } from "waxflow";
import type { FixedPartitionedSource, StatefulSourcePartition } from "waxflow/inputs";
import * as op from "waxflow/operators";
import { runMain } from "waxflow/testing";
import { BackupBucket, type BackupManifest, fileBytes, restoreIfEmpty } from "../../runtime/src/recovery/backup.ts";
import { backupConfig, startObjectStore } from "../../runtime/test/support/seaweedfs.ts";
import { type BenchCase, expectEqual, type Figure, median } from "../harness.ts";
import { CountingSink } from "../io.ts";

/** The backup at epoch 10 starts about 10 s into a run: the window holds it and one interval. */
const WINDOW_FROM_MS = 9_500;
const WINDOW_MS = 10_000;
const RUN_MS = 20_000;
const PAIRS = 3;
const KEYS = 200_000;
const RESTORE_KEYS = 1_000_000;
const MIN_RATIO = 0.95;

const count = (state: number | undefined): readonly [number, number] => {
  const next = (state ?? 0) + 1;
  return [next, next];
};

/**
 * Users `u<i mod KEYS>` in batches of 1000 for RUN_MS; counts what it emitted in the
 * window [WINDOW_FROM_MS, WINDOW_FROM_MS + WINDOW_MS) and how long that took.
 */
class TimedSource implements FixedPartitionedSource<string, number> {
  emitted = 0;
  #from: { at: number; emitted: number } | undefined;
  #to: { at: number; emitted: number } | undefined;

  /** Items per second in the window. */
  get windowRate(): number {
    if (this.#from === undefined || this.#to === undefined) throw new Error("the run ended before its window did");
    return (this.#to.emitted - this.#from.emitted) / ((this.#to.at - this.#from.at) / 1000);
  }

  listParts(): string[] {
    return ["t0"];
  }

  buildPart(): StatefulSourcePartition<string, number> {
    const start = performance.now();
    return {
      nextBatch: () => {
        const now = performance.now();
        if (now - start >= WINDOW_FROM_MS) this.#from ??= { at: now, emitted: this.emitted };
        if (now - start >= WINDOW_FROM_MS + WINDOW_MS) this.#to ??= { at: now, emitted: this.emitted };
        if (now - start >= RUN_MS) return null;
        const batch: string[] = [];
        for (let j = 0; j < 1000; j++) batch.push(`u${(this.emitted + j) % KEYS}`);
        this.emitted += batch.length;
        return batch;
      },
      snapshot: () => this.emitted,
    };
  }
}

async function countFor(
  config: ReturnType<typeof backupConfig> | undefined,
): Promise<{ rate: number; sets: number; seconds: number[]; bytes: number }> {
  const source = new TimedSource();
  const flow = new Dataflow("bench_backup");
  const keyed = op.keyOn("key", op.input("inp", flow, source), (u) => u);
  op.output("out", op.statefulMap("count", keyed, count), new CountingSink<[string, number]>());
  const dir = mkdtempSync(join(tmpdir(), "waxflow-bench-backup-"));
  let sets = 0;
  let bytes = 0;
  const seconds: number[] = [];
  try {
    await runMain(flow, {
      epochIntervalMs: 1000,
      recovery: {
        dbDir: dir,
        init: true,
        backupIntervalMs: 10_000,
        backup: config,
        onBackup: (_set, size, took) => {
          sets++;
          bytes = size;
          seconds.push(took);
        },
      },
    });
    return { rate: source.windowRate, sets, seconds, bytes };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Keys k0..k<n-1> in batches of 10k, then `idleMs` of nothing (so backups run over a
 * quiet store), then `extra`; its position is the next key, so a resumed run goes on
 * after the keys.
 */
class KeysSource implements FixedPartitionedSource<string, number> {
  readonly #n: number;
  readonly #idleMs: number;
  readonly #extra: readonly string[];
  constructor(n: number, idleMs: number, extra: readonly string[] = []) {
    this.#n = n;
    this.#idleMs = idleMs;
    this.#extra = extra;
  }

  listParts(): string[] {
    return ["k"];
  }

  buildPart(_step: string, _part: string, resume: number | undefined): StatefulSourcePartition<string, number> {
    let i = resume ?? 0;
    let idleUntil: number | undefined;
    let extraSent = false;
    return {
      nextBatch: () => {
        if (i < this.#n) {
          const batch: string[] = [];
          for (; i < this.#n && batch.length < 10_000; i++) batch.push(`k${i}`);
          return batch;
        }
        idleUntil ??= Date.now() + this.#idleMs;
        if (Date.now() < idleUntil) return [];
        if (extraSent) return null;
        extraSent = true;
        return [...this.#extra];
      },
      nextAwake: () => (idleUntil !== undefined && Date.now() < idleUntil ? new Date(Date.now() + 50) : undefined),
      snapshot: () => i,
    };
  }
}

function keysFlow(source: KeysSource, sink: CountingSink<[string, number]>) {
  const flow = new Dataflow("bench_backup_restore");
  const keyed = op.keyOn("key", op.input("inp", flow, source), (k) => k);
  op.output("out", op.statefulMap("count", keyed, count), sink);
  return flow;
}

export const backup: BenchCase = {
  title: `backups to SeaweedFS: ${KEYS / 1000}k-key count, ${PAIRS} pairs of ${RUN_MS / 1000} s runs (a ${WINDOW_MS / 1000} s window each), backups every 10 s vs off; restore ${RESTORE_KEYS / 1e6}M keys`,
  targets: {},
  async prepare() {
    return {
      async measure(): Promise<readonly Figure[]> {
        const store = await startObjectStore();
        try {
          const ratios: number[] = [];
          const offRates: number[] = [];
          const onRates: number[] = [];
          const seconds: number[] = [];
          const sizes: number[] = [];
          for (let pair = 0; pair < PAIRS; pair++) {
            const measureOn = () => countFor(backupConfig(store.endpoint, `bench-throughput-${pair}`));
            const [off, on] =
              pair % 2 === 0
                ? [await countFor(undefined), await measureOn()]
                : await measureOn().then(async (on) => [await countFor(undefined), on] as const);
            if (on.sets < 1) throw new Error(`pair ${pair + 1}: no backup in ${RUN_MS / 1000} s: nothing was measured`);
            offRates.push(off.rate);
            onRates.push(on.rate);
            seconds.push(...on.seconds);
            sizes.push(on.bytes);
            ratios.push(off.rate / on.rate);
            process.stderr.write(
              `backup pair ${pair + 1}: off ${Math.round(off.rate)} items/s, on ${Math.round(on.rate)} items/s ` +
                `(${on.sets} backup(s), ${(on.bytes / 1e6).toFixed(1)} MB, ${(on.bytes / KEYS).toFixed(1)} B/key), ` +
                `time per item on / off ${(off.rate / on.rate).toFixed(3)}, load ${loadavg()[0]?.toFixed(1)}\n`,
            );
          }

          // A store of 1M keys, backed up: written in one run, then a second run idles over a
          // few backup intervals so a set of the whole store is uploaded.
          const config = backupConfig(store.endpoint, "bench-restore");
          const dir = mkdtempSync(join(tmpdir(), "waxflow-bench-backup-src-"));
          await runMain(keysFlow(new KeysSource(RESTORE_KEYS, 0), new CountingSink()), {
            epochIntervalMs: 60_000,
            recovery: { dbDir: dir, init: true },
          });
          let uploaded = 0;
          await runMain(keysFlow(new KeysSource(RESTORE_KEYS, 3000), new CountingSink()), {
            epochIntervalMs: 100,
            recovery: { dbDir: dir, backupIntervalMs: 500, backup: config, onBackup: () => uploaded++ },
          });
          rmSync(dir, { recursive: true, force: true });
          if (uploaded === 0) throw new Error("no backup of the 1M-key store was uploaded");
          const bucket = new BackupBucket(config);
          const manifests = (await bucket.list(bucket.setsPrefix)).filter((o) => o.key.endsWith("/manifest.json"));
          const newest = manifests
            .map((o) => o.key)
            .sort()
            .at(-1) as string;
          const manifest = JSON.parse((await bucket.getText(newest)) ?? "") as BackupManifest;
          const bytes = manifest.objects.reduce((n, o) => n + o.bytes, 0);
          const fileSize = manifest.objects.reduce((n, o) => n + fileBytes(o), 0);

          const target = mkdtempSync(join(tmpdir(), "waxflow-bench-backup-dst-"));
          try {
            const t0 = performance.now();
            const restored = await restoreIfEmpty({
              bucket,
              dir: target,
              processId: 0,
              processCount: 1,
              log: () => {},
            });
            if (restored === undefined) throw new Error("nothing was restored");
            const downloaded = (performance.now() - t0) / 1000;
            const sink = new CountingSink<[string, number]>();
            await runMain(keysFlow(new KeysSource(RESTORE_KEYS, 0, ["k0"]), sink), {
              epochIntervalMs: 60_000,
              recovery: { dbDir: target },
            });
            const total = (performance.now() - t0) / 1000;
            expectEqual("backup restore: resumed count of k0", sink.last?.[1], 2);
            return [
              { name: `backups off (median of ${PAIRS})`, value: Math.round(median(offRates)), unit: "items/s" },
              { name: `backups every 10 s (median of ${PAIRS})`, value: Math.round(median(onRates)), unit: "items/s" },
              ...ratios.map((r, i) => ({
                name: `time per item, backups on / off, pair ${i + 1}`,
                value: r,
                unit: "x",
              })),
              {
                name: `time per item, backups on / off, median of ${PAIRS} pairs`,
                value: median(ratios),
                unit: "x",
                below: 1 / MIN_RATIO,
              },
              { name: "one backup of the 200k-key store (longest)", value: Math.max(...seconds), unit: "s" },
              { name: "its size in the bucket (largest)", value: Math.max(...sizes) / 1e6, unit: "MB" },
              { name: "backup bytes per key (200k keys, largest)", value: Math.max(...sizes) / KEYS, unit: "B" },
              { name: "restore 1M keys: download and verify", value: downloaded, unit: "s" },
              { name: "restore 1M keys: download, verify and resume", value: total, unit: "s" },
              { name: "backup bytes per key (1M keys)", value: bytes / RESTORE_KEYS, unit: "B" },
              { name: "store file bytes per key (1M keys, decoded)", value: fileSize / RESTORE_KEYS, unit: "B" },
            ];
          } finally {
            bucket.close();
            rmSync(target, { recursive: true, force: true });
          }
        } finally {
          await store.stop();
        }
      },
    };
  },
};

/**
 * What backups to a bucket are configured with. Kept apart from backup.ts so the CLI and
 * the engine can name them without loading the S3 client, which only a run with a
 * bucket needs.
 */

/** Where backups go and how many are kept. Credentials come from the AWS SDK's chain (AWS_ACCESS_KEY_ID, files). */
export interface BackupConfig {
  /** The S3 endpoint URL; omitted: AWS's for the region. */
  readonly endpoint?: string;
  readonly bucket: string;
  /** Prepended to every key ("" for the bucket's root). */
  readonly prefix?: string;
  readonly region?: string;
  /** Newest complete sets kept (default 3). */
  readonly keep?: number;
  /** Complete sets younger than this are kept too (default 0). */
  readonly keepAgeMs?: number;
  /** Keys given directly (API users, tests); omitted: the SDK's chain (AWS_ACCESS_KEY_ID, files). */
  readonly credentials?: { readonly accessKeyId: string; readonly secretAccessKey: string };
  /** Incomplete sets whose newest object is older than this are deleted (default: two backup intervals). */
  readonly leftoverAgeMs?: number;
}

export const DEFAULT_BACKUP_KEEP = 3;
/** The backup interval when a bucket is given without one. */
export const DEFAULT_BACKUP_INTERVAL_MS = 60_000;

// Image layers as reproducible tars: every header field that could differ between machines
// or builds is fixed (mtime, owner names) and entries are sorted, so the same files always
// give the same bytes and so the same digest (a re-deploy of unchanged code is a no-op).
import { createHash } from "node:crypto";
import { pack } from "tar-stream";

export interface LayerFile {
  /** Path inside /app, e.g. `wordcount.js`. */
  readonly path: string;
  readonly contents: Uint8Array;
}

/** One entry of a layer. Paths are relative to the image's root: `usr/bin/node`, no leading `/`. */
export type TarEntry = (
  | { readonly type: "file"; readonly contents: Uint8Array }
  | { readonly type: "directory" }
  | { readonly type: "symlink"; readonly target: string }
) & {
  readonly path: string;
  /** Default 0o644 for files, 0o755 for directories, 0o777 for symlinks. */
  readonly mode?: number;
  /** Default 0 (root): code and libraries are not writable by the user the image runs as. */
  readonly uid?: number;
  readonly gid?: number;
};

export interface Layer {
  /** The uncompressed tar (media type application/vnd.oci.image.layer.v1.tar). */
  readonly tar: Buffer;
  /** `sha256:<hex>` of the tar: both its blob digest and its diff id. */
  readonly digest: string;
}

export const APP_DIR = "app";
/** The non-root user every waxflow image runs as (the distroless `nonroot` ids). */
export const UID = 65532;
export const GID = 65532;
/** The time of every entry and of every image's `created`. */
export const EPOCH = new Date(0);

/** `sha256:<hex>`: how OCI names blobs. */
export function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

const DEFAULT_MODE = { file: 0o644, directory: 0o755, symlink: 0o777 } as const;

/**
 * The tar of `entries`, sorted by path, with missing parent directories added. A later
 * entry for the same path replaces an earlier one.
 */
export async function tarLayer(entries: Iterable<TarEntry>): Promise<Layer> {
  const byPath = new Map<string, TarEntry>();
  for (const entry of entries) byPath.set(entry.path, entry);
  for (const path of [...byPath.keys()]) {
    const parts = path.split("/");
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join("/");
      if (!byPath.has(dir)) byPath.set(dir, { path: dir, type: "directory" });
    }
  }
  const sorted = [...byPath.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));

  const tar = pack();
  const chunks: Buffer[] = [];
  const collected = (async () => {
    for await (const chunk of tar) chunks.push(chunk as Buffer);
  })();
  for (const entry of sorted) {
    const header = {
      mode: entry.mode ?? DEFAULT_MODE[entry.type],
      uid: entry.uid ?? 0,
      gid: entry.gid ?? 0,
      uname: "",
      gname: "",
      mtime: EPOCH,
    };
    if (entry.type === "file") tar.entry({ ...header, name: entry.path, type: "file" }, entry.contents);
    else if (entry.type === "directory") tar.entry({ ...header, name: `${entry.path}/`, type: "directory" });
    else tar.entry({ ...header, name: entry.path, type: "symlink", linkname: entry.target });
  }
  tar.finalize();
  await collected;
  const bytes = Buffer.concat(chunks);
  return { tar: bytes, digest: sha256(bytes) };
}

/** The dataflow's layer: its files under /app, read-only for the user the image runs as. */
export function appLayer(files: readonly LayerFile[]): Promise<Layer> {
  return tarLayer([
    { path: APP_DIR, type: "directory" },
    ...files.map((f) => ({ path: `${APP_DIR}/${f.path}`, type: "file" as const, contents: f.contents })),
  ]);
}

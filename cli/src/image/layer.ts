// The dataflow's image layer: a tar holding the bundle under /app. Every header field that
// could differ between machines or builds is fixed and entries are sorted, so the same
// bundle always gives the same bytes and so the same digest (a re-deploy is a no-op).
import { createHash } from "node:crypto";
import { pack } from "tar-stream";

export interface LayerFile {
  /** Path inside /app, e.g. `wordcount.js`. */
  readonly path: string;
  readonly contents: Uint8Array;
}

export interface Layer {
  /** The uncompressed tar (media type application/vnd.oci.image.layer.v1.tar). */
  readonly tar: Buffer;
  /** `sha256:<hex>` of the tar: both its blob digest and its diff id. */
  readonly digest: string;
}

export const APP_DIR = "app";
// The runtime image's non-root user (the distroless `nonroot` ids).
/** The non-root user every waxflow image runs as, and the fixed time of every entry. */
export const UID = 65532;
export const GID = 65532;
export const EPOCH = new Date(0);

/** `sha256:<hex>`: how OCI names blobs. */
export function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

export async function appLayer(files: readonly LayerFile[]): Promise<Layer> {
  const sorted = [...files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const dirs = new Set<string>([APP_DIR]);
  for (const file of sorted) {
    const parts = file.path.split("/").slice(0, -1);
    for (let i = 1; i <= parts.length; i++) dirs.add(`${APP_DIR}/${parts.slice(0, i).join("/")}`);
  }
  const common = { mtime: EPOCH, uid: UID, gid: GID, uname: "", gname: "" };
  const entries = [
    ...[...dirs].map((name) => ({ name: `${name}/`, type: "directory" as const, mode: 0o755 })),
    ...sorted.map((f) => ({ name: `${APP_DIR}/${f.path}`, type: "file" as const, mode: 0o644, contents: f.contents })),
  ].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

  const tar = pack();
  for (const entry of entries) {
    if (entry.type === "directory") tar.entry({ ...common, name: entry.name, type: "directory", mode: entry.mode });
    else tar.entry({ ...common, name: entry.name, type: "file", mode: entry.mode }, Buffer.from(entry.contents));
  }
  tar.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of tar) chunks.push(chunk as Buffer);
  const bytes = Buffer.concat(chunks);
  return { tar: bytes, digest: sha256(bytes) };
}

// A dataflow image is its base (the waxflow-runtime image) plus the app layer. This turns
// the base's manifest and config and the layer into the new config and manifest: plain
// JSON in, bytes and digests out, so the same inputs always name the same image.
import { APP_DIR, EPOCH, GID, type Layer, sha256, UID } from "./layer.ts";

export const MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json";
export const CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json";
export const LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar";

export interface Descriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
}

export interface ImageManifest {
  readonly schemaVersion: 2;
  readonly mediaType: string;
  readonly config: Descriptor;
  readonly layers: readonly Descriptor[];
}

/** The fields of an OCI image config this code reads or writes; the rest pass through. */
export interface ImageConfig {
  readonly config?: Readonly<Record<string, unknown>>;
  readonly rootfs: { readonly type: "layers"; readonly diff_ids: readonly string[] };
  readonly history?: readonly Readonly<Record<string, unknown>>[];
  readonly [field: string]: unknown;
}

export interface Blob {
  readonly bytes: Buffer;
  readonly descriptor: Descriptor;
}

export interface DataflowImage {
  readonly config: Blob;
  readonly manifest: Blob;
  /** `sha256:` of the manifest: what the Dataflow's spec.image points at. */
  readonly digest: string;
}

// The runtime image's non-root user, as in the layer's file ownership.
const USER = `${UID}:${GID}`;
const CREATED = EPOCH.toISOString();

function blob(mediaType: string, value: unknown): Blob {
  const bytes = Buffer.from(JSON.stringify(value));
  const digest = sha256(bytes);
  return { bytes, descriptor: { mediaType, digest, size: bytes.length } };
}

export function dataflowImage(
  base: { manifest: ImageManifest; config: ImageConfig },
  layer: Layer,
  entry: string,
): DataflowImage {
  const config: ImageConfig = {
    ...base.config,
    // Fixed, not the build time: a rebuild of unchanged code must give the same digest.
    created: CREATED,
    config: {
      ...base.config.config,
      User: USER,
      WorkingDir: `/${APP_DIR}`,
      Entrypoint: ["waxflow", "run", `/${APP_DIR}/${entry}`],
      Cmd: [],
    },
    rootfs: { type: "layers", diff_ids: [...base.config.rootfs.diff_ids, layer.digest] },
    history: [...(base.config.history ?? []), { created: CREATED, created_by: "waxctl df deploy", comment: entry }],
  };
  const configBlob = blob(CONFIG_MEDIA_TYPE, config);
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MANIFEST_MEDIA_TYPE,
    config: configBlob.descriptor,
    layers: [...base.manifest.layers, { mediaType: LAYER_MEDIA_TYPE, digest: layer.digest, size: layer.tar.length }],
  };
  const manifestBlob = blob(MANIFEST_MEDIA_TYPE, manifest);
  return { config: configBlob, manifest: manifestBlob, digest: manifestBlob.descriptor.digest };
}

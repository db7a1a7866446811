// OCI image configs and manifests: plain JSON in, bytes and digests out, so the same
// inputs always name the same image. A base image (images/) is layers plus a config; a
// dataflow image is its base (the waxflow-runtime image) plus the app layer.
import { APP_DIR, EPOCH, GID, type Layer, sha256, UID } from "./layer.ts";

export const MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json";
export const INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json";
export const CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json";
export const LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar";

export interface Descriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly annotations?: Readonly<Record<string, string>>;
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

/** A manifest and config just made; its layers are the caller's. */
export interface NewImage {
  readonly config: Blob;
  readonly manifest: Blob;
  /** `sha256:` of the manifest: what a reference by digest points at. */
  readonly digest: string;
}

const CREATED = EPOCH.toISOString();
/** Dataflows never run as root, whatever the base says. */
export const USER = `${UID}:${GID}`;

function blob(mediaType: string, value: unknown): Blob {
  const bytes = Buffer.from(JSON.stringify(value));
  return { bytes, descriptor: { mediaType, digest: sha256(bytes), size: bytes.length } };
}

function layerDescriptor(layer: Layer): Descriptor {
  return { mediaType: LAYER_MEDIA_TYPE, digest: layer.digest, size: layer.tar.length };
}

function finish(config: ImageConfig, layers: readonly Descriptor[]): NewImage {
  const configBlob = blob(CONFIG_MEDIA_TYPE, config);
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MANIFEST_MEDIA_TYPE,
    config: configBlob.descriptor,
    layers,
  };
  const manifestBlob = blob(MANIFEST_MEDIA_TYPE, manifest);
  return { config: configBlob, manifest: manifestBlob, digest: manifestBlob.descriptor.digest };
}

/** A linux/amd64 image of `layers` (bottom first), each with the step that made it. */
export function baseImage(
  layers: readonly { readonly layer: Layer; readonly createdBy: string }[],
  config: Readonly<Record<string, unknown>>,
): NewImage {
  return finish(
    {
      // Fixed, not the build time: a rebuild of unchanged inputs must give the same digest.
      created: CREATED,
      architecture: "amd64",
      os: "linux",
      config,
      rootfs: { type: "layers", diff_ids: layers.map((l) => l.layer.digest) },
      history: layers.map((l) => ({ created: CREATED, created_by: l.createdBy })),
    },
    layers.map((l) => layerDescriptor(l.layer)),
  );
}

/**
 * The base plus the app layer. The base's entrypoint (`waxflow run`) stays; the command
 * is the module, so a Dataflow's `module` (the container's args) replaces it.
 */
export function dataflowImage(
  base: { manifest: ImageManifest; config: ImageConfig },
  layer: Layer,
  entry: string,
): NewImage {
  return finish(
    {
      ...base.config,
      created: CREATED,
      config: { ...base.config.config, User: USER, WorkingDir: `/${APP_DIR}`, Cmd: [`/${APP_DIR}/${entry}`] },
      rootfs: { type: "layers", diff_ids: [...base.config.rootfs.diff_ids, layer.digest] },
      history: [...(base.config.history ?? []), { created: CREATED, created_by: "waxctl image build", comment: entry }],
    },
    [...base.manifest.layers, layerDescriptor(layer)],
  );
}

// OCI images without a daemon: layers as reproducible tar blobs, image layouts and archives,
// and a registry client (the Distribution API, with Docker's credential helpers).
export * from "./credentials.ts";
export * from "./errors.ts";
export * from "./image.ts";
export * from "./layer.ts";
export * from "./network.ts";
export * from "./oci.ts";
export * from "./registry.ts";

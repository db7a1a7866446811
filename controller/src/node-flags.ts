/**
 * The Node flags the controller runs with (the image's entrypoint, `npm start`, the bench).
 * V8 sizes the young generation by the machine's memory, up to 64 MiB per semi-space on a
 * large node: far more than a controller's short-lived garbage needs, and resident once
 * touched. Capped, the controller with 1000 Dataflows stays about 40 MB smaller.
 * V8 reads them at start only (command line or NODE_OPTIONS, not v8.setFlagsFromString);
 * `npm start` in controller/package.json spells them out too.
 */
export const NODE_FLAGS: readonly string[] = ["--max-semi-space-size=8"];

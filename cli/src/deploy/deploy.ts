// `df deploy` as steps: bundle, build (an injected step), apply by server-side apply after a
// server dry run decided what changes, then wait. Nothing is written before every check
// passed; a namespace this deploy created is removed again if the apply does not happen.
import type { Dataflow } from "@waxflow/crds";
import { APP_DIR } from "@waxflow/oci";
import { type BundleOptions, bundleDataflow } from "../bundle.ts";
import { UsageError, UserError } from "../errors.ts";
import type { Cluster } from "../kube.ts";
import { bytes } from "../ui/format.ts";
import { type Progress, step } from "../ui/progress.ts";
import { planDeploy } from "./diff.ts";
import { dataflowManifest } from "./manifest.ts";
import type { DeployOptions } from "./options.ts";
import { waitUntilFormed } from "./wait.ts";

/**
 * Builds the dataflow's image from the entry at `path` and delivers it where the cluster's
 * nodes find it; returns its reference by digest and the bundle's module inside it.
 */
export type BuildImage = (input: {
  path: string;
  name: string;
  progress: Progress;
  /** What the bundle's check loads, as the pods will: the export and the variables. */
  check: BundleOptions;
}) => Promise<{ reference: string; module: string }>;

/** PATH or PATH:NAME, NAME picking a named export or factory as `waxflow run` does. */
export function entryOf(path: string): { file: string; exportName?: string } {
  const named = /^(.+):([A-Za-z_$][\w$]*)$/.exec(path);
  return named === null ? { file: path } : { file: named[1] as string, exportName: named[2] };
}

/**
 * Bundles the entry (which checks that it compiles and, unless `check.check` is false, that
 * it exports a Dataflow when loaded with the pods' variables) and names the module the pods run.
 */
export async function bundledModule(path: string, cwd: string, progress: Progress, check: LoadCheck): Promise<string> {
  const { file, exportName } = entryOf(path);
  const bundle = await step(
    progress,
    "bundle",
    () => bundleDataflow(file, cwd, { ...check, exportName }),
    (b) => `${b.entry}, ${bytes(b.code.length)}`,
  );
  return `/${APP_DIR}/${bundle.entry}${exportName === undefined ? "" : `:${exportName}`}`;
}

/** How deploy loads the bundle before building: with the pods' `-e` variables, or not at all. */
export type LoadCheck = Omit<BundleOptions, "exportName">;

export function loadCheck(options: DeployOptions, check: boolean): LoadCheck {
  return { env: Object.fromEntries(options.env.map((e) => [e.name, e.value])), check };
}

export interface DeployRequest {
  readonly options: DeployOptions;
  readonly namespace: string;
  /** The entry module; without it (only with --image) the live Dataflow's module is kept. */
  readonly path?: string;
  readonly createNamespace: boolean;
  readonly yes: boolean;
  /** Milliseconds to wait for the cluster to form; undefined for --no-wait. */
  readonly waitMs?: number;
  /** Load the bundle here first to check it exports a Dataflow (false: --no-check). */
  readonly check: boolean;
}

export interface DeployResult {
  readonly action: "created" | "updated" | "unchanged";
  readonly dataflow: Dataflow;
  /** The worker cluster formed (false when not waited for, or suspended). */
  readonly ready: boolean;
}

export interface DeploySteps {
  readonly cluster: Cluster;
  readonly progress: Progress;
  readonly cwd: string;
  /** Absent when there is nowhere to deliver an image to: then --image is required. */
  readonly build?: BuildImage;
}

export async function deploy(request: DeployRequest, steps: DeploySteps): Promise<DeployResult> {
  const { options, namespace } = request;
  const { cluster, progress } = steps;
  if (options.image === undefined && (steps.build === undefined || request.path === undefined)) {
    throw new UsageError(
      request.path === undefined
        ? "PATH is missing: pass the dataflow's entry module to build, or --image REF@sha256:<digest>"
        : "this cluster is not a kind cluster, so the image must go through a registry: pass --registry HOST/PREFIX (the cluster must be able to pull from it), --kind CLUSTER, or --image REF@sha256:<digest> of an image built on waxflow-runtime",
    );
  }
  await requireSecrets(cluster, namespace, options);
  const live = await cluster.getDataflow(namespace, options.name);
  let image: string;
  let module: string;
  if (options.image === undefined) {
    const { file, exportName } = entryOf(request.path ?? "");
    const built = await (steps.build as BuildImage)({
      path: file,
      name: options.name,
      progress,
      check: { ...loadCheck(options, request.check), exportName },
    });
    image = built.reference;
    module = `${built.module}${exportName === undefined ? "" : `:${exportName}`}`;
  } else if (request.path !== undefined) {
    image = options.image;
    module = await bundledModule(request.path, steps.cwd, progress, loadCheck(options, request.check));
  } else if (live !== undefined) {
    image = options.image;
    module = live.spec.module;
  } else {
    throw new UserError(
      `dataflow ${options.name} does not exist in namespace ${namespace} yet: pass PATH, the entry module the image runs`,
    );
  }
  const manifest = dataflowManifest({ options, namespace, image, module });
  if (live === undefined && options.recovery) await noticeKeptVolumes(cluster, namespace, options.name, progress);

  const stage = progress.stage("apply");
  let applied: Dataflow;
  let action: DeployResult["action"];
  let changed: readonly string[];
  let createdNamespace = false;
  try {
    createdNamespace = request.createNamespace && (await cluster.ensureNamespace(namespace));
    // The server's dry run applies defaults and validation: the plan compares what it would store.
    const plan = planDeploy(live, await cluster.applyDataflow(manifest, true));
    if (plan.replacesRunning && !request.yes) throw refusal(live as Dataflow, plan.fields);
    changed = plan.fields;
    if (plan.action === "unchanged") {
      applied = live as Dataflow;
      action = "unchanged";
    } else {
      applied = await cluster.applyDataflow(manifest, false);
      action = plan.action === "create" ? "created" : "updated";
    }
  } catch (err) {
    stage.fail("nothing applied");
    if (createdNamespace) await cluster.deleteNamespace(namespace);
    throw err;
  }
  stage.done(action === "updated" ? `updated ${changed.map((f) => `spec.${f}`).join(", ") || "labels"}` : action);

  if (request.waitMs === undefined) return { action, dataflow: applied, ready: false };
  if (applied.spec.state === "suspended") {
    progress.skip("pods ready", "the dataflow is suspended");
    return { action, dataflow: applied, ready: false };
  }
  const formed = await waitUntilFormed(cluster, applied, progress, { timeoutMs: request.waitMs });
  return { action, dataflow: formed, ready: true };
}

/** A new Dataflow under the name of a deleted one mounts the volumes that one kept, and resumes from them. */
/**
 * Every Secret the flags name exists in the namespace, with the keys --secret-file
 * mounts: checked before anything is built or applied, since pods waiting on a missing
 * Secret only sit in ContainerCreating.
 */
async function requireSecrets(cluster: Cluster, namespace: string, options: DeployOptions): Promise<void> {
  const wanted = new Map<string, { flag: string; keys: string[] }>();
  for (const name of options.envFromSecrets) wanted.set(name, { flag: `--env-from-secret ${name}`, keys: [] });
  for (const f of options.secretFiles) {
    const entry = wanted.get(f.secret) ?? { flag: `--secret-file ${f.secret}:${f.key}=${f.path}`, keys: [] };
    entry.keys.push(f.key);
    wanted.set(f.secret, entry);
  }
  for (const [name, { flag, keys }] of wanted) {
    const present = await cluster.secretKeys(namespace, name);
    if (present === undefined) {
      throw new UserError(
        `Secret ${name} does not exist in namespace ${namespace} (${flag}); create it first, e.g. kubectl create secret generic ${name} -n ${namespace} --from-file=...`,
      );
    }
    const missing = keys.find((k) => !present.includes(k));
    if (missing !== undefined) {
      throw new UserError(
        `Secret ${name} in namespace ${namespace} has no key ${missing} (--secret-file ${name}:${missing}=...); it has ${present.join(", ") || "no keys"}`,
      );
    }
  }
}

async function noticeKeptVolumes(cluster: Cluster, namespace: string, name: string, progress: Progress) {
  const { volumes } = await cluster.owned(namespace, name);
  if (volumes.length === 0) return;
  progress
    .stage("recovery volumes")
    .done(
      `resuming from the ${volumes.length} kept by an earlier dataflow ${name} (${volumes.join(", ")}); ` +
        `\`waxctl df delete ${name} -n ${namespace} --purge --yes\` first to start from nothing`,
    );
}

function refusal(live: Dataflow, fields: readonly string[]): UserError {
  const { name = "", namespace = "" } = live.metadata ?? {};
  const state = live.spec.recovery?.enabled
    ? "they resume from recovery"
    : "their state is lost: the dataflow has no --recovery";
  return new UserError(
    `dataflow ${name} in namespace ${namespace} is running and this deploy changes ${fields.map((f) => `spec.${f}`).join(", ")}, which replaces every process (${state}); add --yes to replace it`,
  );
}

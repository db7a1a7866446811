// The operator's half of the contract with the pods, checked against the runtime's own
// parser: the environment and arguments the StatefulSet gives the container, resolved as the
// kubelet would, make `waxflow run` (the image's entrypoint) run what the spec says; and
// every WAXFLOW_* variable the operator sets is one the runtime reads, so a renamed variable
// cannot be set and silently ignored.
import type { V1EnvVar } from "@kubernetes/client-node";
import { SAVEPOINT_ID, type SavepointRecord, withDefaults } from "@waxflow/crds";
import { expect, expectTypeOf, test } from "vitest";
import { type Env, resolveCommand } from "../../runtime/src/cli/config.ts";
import type { SavepointRecord as RuntimeSavepointRecord } from "../../runtime/src/recovery/savepoint.ts";
import { SAVEPOINT_ID as RUNTIME_SAVEPOINT_ID } from "../../runtime/src/recovery/start-from.ts";
import { desiredStatefulSet } from "../src/desired/objects.ts";
import { dataflow } from "./fixtures.ts";

const POD = { "metadata.namespace": "ns1", "metadata.name": "wc-1", "status.podIP": "10.0.0.7" };
const SECRET_BYTES = Buffer.alloc(32, 7);

/** The kubelet's part: field references and Secret keys become values. */
function resolved(env: readonly V1EnvVar[]): Record<string, string> {
  return Object.fromEntries(
    env.map((e) => {
      const field = e.valueFrom?.fieldRef?.fieldPath;
      if (field !== undefined) return [e.name, POD[field as keyof typeof POD] ?? `unknown field ${field}`];
      const secretKey = e.valueFrom?.secretKeyRef?.key;
      if (secretKey !== undefined) return [e.name, `secret-value-of-${secretKey}`];
      return [e.name, e.value ?? ""];
    }),
  );
}

test("the container's environment makes waxflow run what the spec says, and the runtime reads every WAXFLOW_* variable set", () => {
  const df = dataflow({
    processes: 3,
    workersPerProcess: 2,
    stateQuery: true,
    recovery: {
      enabled: true,
      snapshotInterval: "5s",
      backupInterval: "1m",
      dropRemovedSteps: true,
      backup: {
        bucket: "snapshots",
        endpoint: "http://s3.example:8333",
        prefix: "team-a",
        region: "eu-west-1",
        keep: 5,
        keepAge: "24h",
        credentialsSecret: { name: "s3-keys" },
      },
    },
    restoreFrom: { savepoint: "sp-20261205-103500-3f9a", prefix: "team-a/source" },
  });
  const sts = desiredStatefulSet(df, withDefaults(df.spec), 3);
  const container = sts.spec?.template.spec?.containers.find((c) => c.name === "waxflow");
  if (container === undefined) throw new Error("no waxflow container");
  const env = resolved(container.env ?? []);
  const read = new Set<string>();
  const watched = new Proxy(env, {
    get(target, name) {
      if (typeof name === "string") read.add(name);
      return target[name as string];
    },
  }) as Env;
  const secretFiles: string[] = [];
  const command = resolveCommand(["run", ...(container.args ?? [])], watched, {
    readHostfile: (path) => {
      throw new Error(`no hostfile on Kubernetes, asked for ${path}`);
    },
    readSecretFile: (path) => {
      secretFiles.push(path);
      return SECRET_BYTES;
    },
  });
  if (command.kind !== "run") throw new Error(`expected run, got ${command.kind}`);
  const { config } = command;
  expect(config).toMatchObject({
    modulePath: df.spec.module,
    workersPerProcess: 2,
    processId: 1,
    addresses: [0, 1, 2].map((i) => `wc-${i}.wc.ns1.svc:2101`),
    recoveryDirectory: "/var/lib/waxflow/recovery",
    recoveryInit: true,
    dropRemovedSteps: true,
    holder: false,
    epochIntervalMs: 5000,
    backupIntervalMs: 60_000,
    apiPort: 3030,
    stateQuery: true,
    backup: {
      bucket: "snapshots",
      endpoint: "http://s3.example:8333",
      prefix: "team-a",
      region: "eu-west-1",
      keep: 5,
      keepAgeMs: 24 * 3600 * 1000,
    },
    mesh: { listenHost: "10.0.0.7" },
    startFrom: { kind: "savepoint", id: "sp-20261205-103500-3f9a" },
    savepointPrefix: "team-a/source",
  });
  // The secret is read from the mounted file the operator names.
  expect(secretFiles).toEqual([env.WAXFLOW_CLUSTER_SECRET_FILE]);
  const set = Object.keys(env).filter((name) => name.startsWith("WAXFLOW_"));
  expect(set.length).toBeGreaterThan(15);
  expect(set.filter((name) => !read.has(name))).toEqual([]);
});

// The start-from a roll sets (upgradeMode stateless and savepoint, a rollback): the runtime
// must read it too. WAXFLOW_START_FROM is the contract's (savepoint-contract.md); the
// runtime's side lands with its savepoint work.
test.each(["fresh:7", "savepoint:sp-20261205-103500-g7", "savepoint:sp-20261205-103500-g7@rollback-8"])(
  "WAXFLOW_START_FROM=%s is one the runtime reads",
  (startFrom) => {
    const df = dataflow({ recovery: { enabled: true, backup: { bucket: "snapshots" } }, upgradeMode: "savepoint" });
    const sts = desiredStatefulSet(df, withDefaults(df.spec), 1, startFrom);
    const container = sts.spec?.template.spec?.containers.find((c) => c.name === "waxflow");
    const env = resolved(container?.env ?? []);
    expect(env.WAXFLOW_START_FROM).toBe(startFrom);
    const read = new Set<string>();
    const watched = new Proxy(env, {
      get(target, name) {
        if (typeof name === "string") read.add(name);
        return target[name as string];
      },
    }) as Env;
    resolveCommand(["run", ...(container?.args ?? [])], watched, {
      readHostfile: (path) => {
        throw new Error(`no hostfile on Kubernetes, asked for ${path}`);
      },
      readSecretFile: () => SECRET_BYTES,
    });
    expect([...Object.keys(env)].filter((n) => n.startsWith("WAXFLOW_") && !read.has(n))).toEqual([]);
  },
);

// The runtime may not import @waxflow/crds, so it writes the savepoint API's shapes itself.
test("a savepoint id and record mean the same to the runtime as to waxctl and the operator", () => {
  expect(RUNTIME_SAVEPOINT_ID.source).toBe(SAVEPOINT_ID.source);
  expectTypeOf<RuntimeSavepointRecord>().toEqualTypeOf<SavepointRecord>();
});

import { durationMs } from "@waxflow/crds";
import { describe, expect, test } from "vitest";
import { withSecretFiles } from "../src/deploy/manifest.ts";
import { type DeployFlags, deployOptions, podTemplate } from "../src/deploy/options.ts";

const base: DeployFlags = { name: "orders", processes: 1, workers: 1, env: [], recovery: false };
const digest = `sha256:${"a".repeat(64)}`;

test("a valid set of flags becomes numbers, env pairs and recovery settings", () => {
  const options = deployOptions({
    ...base,
    processes: 3,
    workers: 2,
    env: ["LOG_LEVEL=debug", "URL=http://x/?a=b"],
    image: `registry.example/orders@${digest}`,
    recovery: true,
    recoverySize: "5Gi",
    recoveryStorageclass: "fast",
    recoverySnapshotInterval: "5s",
    recoveryBackupInterval: "1m",
  });
  expect(options).toEqual({
    name: "orders",
    processes: 3,
    workersPerProcess: 2,
    env: [
      { name: "LOG_LEVEL", value: "debug" },
      { name: "URL", value: "http://x/?a=b" },
    ],
    envFromSecrets: [],
    secretFiles: [],
    image: `registry.example/orders@${digest}`,
    recovery: { size: "5Gi", storageClassName: "fast", snapshotInterval: "5s", backupInterval: "1m" },
  });
});

test.each([
  [{ name: "Orders" }, /^--name "Orders" is not a DNS-1123 label/],
  [{ name: "-orders" }, /--name/],
  [{ name: "a".repeat(53) }, /at most 52/],
  [{ env: ["NOEQUALS"] }, /^-e\/--env takes KEY=VALUE/],
  [{ env: ["1X=2"] }, /^-e\/--env takes KEY=VALUE/],
  [{ env: ["WAXFLOW_WORKERS_PER_PROCESS=4"] }, /^-e WAXFLOW_WORKERS_PER_PROCESS: WAXFLOW_\* variables/],
  [{ env: ["A=1", "A=2"] }, /^-e A is given twice/],
  [{ image: "registry.example/orders:latest" }, /^--image must name an image by digest/],
  [{ envFromSecret: ["Kafka_Env"] }, /^--env-from-secret "Kafka_Env" is not a Secret name/],
  [{ envFromSecret: ["kafka", "kafka"] }, /^--env-from-secret kafka is given twice/],
  [{ secretFile: ["kafka/password"] }, /^--secret-file takes NAME:KEY=\/path, got "kafka\/password"/],
  [{ secretFile: ["kafka:pass word=/p"] }, /^--secret-file kafka:pass word=\/p: "pass word" is not a Secret key/],
  [{ secretFile: ["kafka:password=etc/p"] }, /^--secret-file kafka:password=etc\/p: the file must be an absolute path/],
  [{ secretFile: ["a:x=/p", "b:y=/p"] }, /^--secret-file: two files at \/p/],
  [{ recovery: true, recoverySize: "lots" }, /^--recovery-size must be a Kubernetes quantity/],
  [{ recovery: true, recoverySnapshotInterval: "10" }, /^--recovery-snapshot-interval must be a duration/],
  [{ recovery: true, recoverySnapshotInterval: "50ms" }, /at least 100ms/],
  [
    { recovery: true, recoveryBackupInterval: "5s" },
    /^--recovery-backup-interval must be at least the snapshot interval \(10s\)/,
  ],
  [{ recovery: true, backupBucket: "b", backupEndpoint: "seaweedfs:8333" }, /^--backup-endpoint must be an http/],
  [{ recovery: true, backupBucket: "b", backupCredentialsSecret: "S3_Keys" }, /^--backup-credentials-secret "S3_Keys"/],
  [{ upgradeMode: "savepoint" }, /^--upgrade-mode savepoint takes its savepoints in the backup bucket; add --recovery/],
  [{ rollbackAfter: "5" }, /^--rollback-after must be a duration/],
] as [Partial<DeployFlags>, RegExp][])("rejects %o with one line naming the flag", (flags, message) => {
  let error: unknown;
  try {
    deployOptions({ ...base, ...flags });
  } catch (err) {
    error = err;
  }
  expect(error).toBeInstanceOf(Error);
  expect((error as Error).message).toMatch(message);
  expect((error as Error).message).not.toContain("\n");
});

test("--upgrade-mode and --rollback-after set spec.upgradeMode and spec.rollback; left out, both are absent", () => {
  const backups = { recovery: true, backupBucket: "b" };
  expect(deployOptions({ ...base, ...backups, upgradeMode: "savepoint", rollbackAfter: "90s" })).toMatchObject({
    upgradeMode: "savepoint",
    rollback: { enabled: true, readyTimeout: "90s" },
  });
  expect(deployOptions({ ...base, upgradeMode: "stateless" }).upgradeMode).toBe("stateless");
  const plain = deployOptions(base);
  expect("upgradeMode" in plain || "rollback" in plain).toBe(false);
});

test("--state-query sets stateQuery; left out, the option is absent (the CRD defaults it off)", () => {
  expect(deployOptions({ ...base, stateQuery: true }).stateQuery).toBe(true);
  expect("stateQuery" in deployOptions({ ...base, stateQuery: false })).toBe(false);
  expect("stateQuery" in deployOptions(base)).toBe(false);
});

test("--backup-* flags become recovery.backup, the keys by the Secret's name", () => {
  const options = deployOptions({
    ...base,
    recovery: true,
    backupBucket: "backups",
    backupEndpoint: "http://seaweedfs.storage:8333",
    backupPrefix: "prod/orders",
    backupCredentialsSecret: "s3-keys",
  });
  expect(options.recovery?.backup).toEqual({
    bucket: "backups",
    endpoint: "http://seaweedfs.storage:8333",
    prefix: "prod/orders",
    region: undefined,
    credentialsSecret: "s3-keys",
  });
});

test("durations add up their parts", () => {
  expect(durationMs("1m30s")).toBe(90_000);
  expect(durationMs("1.5s")).toBe(1500);
  expect(durationMs("250ms")).toBe(250);
});

describe("--pod-template", () => {
  test("a PodTemplateSpec overlay goes into the Dataflow as spec.podTemplate", () => {
    const text = "spec:\n  volumes:\n    - name: out\n      persistentVolumeClaim: { claimName: shared }\n";
    const options = deployOptions({ ...base, podTemplate: { file: "pt.yaml", text } });
    expect(options.podTemplate).toEqual({
      spec: { volumes: [{ name: "out", persistentVolumeClaim: { claimName: "shared" } }] },
    });
  });

  test("bad YAML names the file and line; other shapes say what is expected", () => {
    expect(() => podTemplate("pt.yaml", "spec:\n  volumes: [\n")).toThrow(
      /^--pod-template pt.yaml: not valid YAML, line \d+/,
    );
    expect(() => podTemplate("pt.yaml", "- a\n")).toThrow(
      "--pod-template pt.yaml: expected a PodTemplateSpec mapping (metadata:, spec:), got a list",
    );
    expect(() => podTemplate("pt.yaml", "containers: []\n")).toThrow(
      "a PodTemplateSpec has only metadata and spec, not containers",
    );
  });
});

test("--secret-file mounts join the --pod-template's volumes and the waxflow container's mounts", () => {
  const template = podTemplate(
    "pt.yaml",
    "spec:\n  volumes: [{ name: data, emptyDir: {} }]\n  containers:\n    - name: waxflow\n      volumeMounts: [{ name: data, mountPath: /data }]\n    - name: sidecar\n      image: busybox\n",
  );
  const { secretFiles } = deployOptions({ ...base, secretFile: ["kafka:ca.crt=/etc/kafka/ca.pem"] });
  const merged = withSecretFiles(template, secretFiles);
  expect(merged?.spec?.volumes).toEqual([
    { name: "data", emptyDir: {} },
    { name: "waxctl-secret-file-0", secret: { secretName: "kafka", items: [{ key: "ca.crt", path: "ca.pem" }] } },
  ]);
  expect(merged?.spec?.containers).toEqual([
    {
      name: "waxflow",
      volumeMounts: [
        { name: "data", mountPath: "/data" },
        { name: "waxctl-secret-file-0", mountPath: "/etc/kafka/ca.pem", subPath: "ca.pem", readOnly: true },
      ],
    },
    { name: "sidecar", image: "busybox" },
  ]);
  expect(withSecretFiles(template, [])).toBe(template);
});

// An S3-compatible object store in the kind cluster, for backup and restore scenarios:
// one pod of the waxflow-seaweedfs image (images/seaweedfs.ts) running `weed mini`
// (master, volume, filer and S3 gateway in one process) with its S3 identities from a
// Secret, so a wrong key is refused for real; its S3 gateway on a Service. Manifests are
// pure functions of their settings; `openBucket` reaches the bucket from the test through
// a `kubectl port-forward` and the runtime's own S3 client.
import { type ChildProcess, spawn } from "node:child_process";
import { BackupBucket } from "../../runtime/src/recovery/backup.ts";
import type { Manifest } from "./kafka.ts";

export const S3_PORT = 8333;
const UID = 65532;
const DATA = "/data";
const IDENTITIES_DIR = "/etc/seaweedfs";
const IDENTITIES_FILE = "s3.json";

export interface ObjectStoreSettings {
  readonly namespace: string;
  /** The Deployment's and the Service's name. */
  readonly name: string;
  readonly image: string;
  /** Created at start (the gateway creates no bucket on upload). */
  readonly bucket: string;
  /** Access key id to secret key: every identity the gateway accepts. */
  readonly keys: Readonly<Record<string, string>>;
}

/** The endpoint URL clients in the cluster use. */
export function s3Endpoint(settings: Pick<ObjectStoreSettings, "name" | "namespace">): string {
  return `http://${settings.name}.${settings.namespace}.svc:${S3_PORT}`;
}

const labels = (name: string): Record<string, string> => ({ "app.kubernetes.io/name": name });

/** SeaweedFS's S3 identities file: one identity per key, each allowed everything in every bucket. */
export function identitiesConfig(keys: Readonly<Record<string, string>>): string {
  const identities = Object.entries(keys).map(([accessKey, secretKey], i) => ({
    name: `e2e-${i}`,
    credentials: [{ accessKey, secretKey }],
    actions: ["Admin", "Read", "Write", "List", "Tagging"],
  }));
  if (identities.length === 0) throw new Error("object store keys: give at least one, or every request is refused");
  return `${JSON.stringify({ identities }, null, 2)}\n`;
}

/** The `weed mini` arguments: every server on the pod's address, no UI, no telemetry, no extra gateways. */
export function weedArgs(settings: Pick<ObjectStoreSettings, "bucket">): string[] {
  return [
    "mini",
    `-dir=${DATA}`,
    // Identifies the servers to each other: they all run in this pod.
    "-ip=127.0.0.1",
    "-ip.bind=0.0.0.0",
    `-s3.port=${S3_PORT}`,
    `-s3.config=${IDENTITIES_DIR}/${IDENTITIES_FILE}`,
    `-bucket=${settings.bucket}`,
    "-s3.autoCreateBucket=false",
    "-s3.port.iceberg=0",
    "-s3.port.lance=0",
    "-master.telemetry=false",
    "-webdav=false",
    "-admin.ui=false",
    "-admin.port.legacy=0",
    // 49 volumes of 1 GiB would be promised on a kind node's disk: a few small ones suffice.
    "-master.volumeSizeLimitMB=64",
  ];
}

const restrictedContainer = {
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  runAsNonRoot: true,
  capabilities: { drop: ["ALL"] },
};

/** The store: its identities Secret, its Service and its one-pod Deployment (data on an emptyDir). */
export function objectStoreManifests(settings: ObjectStoreSettings): Manifest[] {
  const { name, namespace, image } = settings;
  const meta = (suffix: string) => ({ name: `${name}${suffix}`, namespace, labels: labels(name) });
  return [
    {
      apiVersion: "v1",
      kind: "Secret",
      metadata: meta("-identities"),
      type: "Opaque",
      stringData: { [IDENTITIES_FILE]: identitiesConfig(settings.keys) },
    },
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: meta(""),
      spec: { selector: labels(name), ports: [{ name: "s3", port: S3_PORT, targetPort: S3_PORT }] },
    },
    {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: meta(""),
      spec: {
        replicas: 1,
        // One pod owns the data directory at a time.
        strategy: { type: "Recreate" },
        selector: { matchLabels: labels(name) },
        template: {
          metadata: { labels: labels(name) },
          spec: {
            securityContext: {
              runAsNonRoot: true,
              runAsUser: UID,
              runAsGroup: UID,
              fsGroup: UID,
              seccompProfile: { type: "RuntimeDefault" },
            },
            automountServiceAccountToken: false,
            containers: [
              {
                name: "seaweedfs",
                image,
                imagePullPolicy: "IfNotPresent",
                args: weedArgs(settings),
                ports: [{ name: "s3", containerPort: S3_PORT }],
                // The gateway answers before the filer behind it does; a TCP check is enough
                // here, and `openBucket` users wait for a listing anyway.
                readinessProbe: { tcpSocket: { port: S3_PORT }, initialDelaySeconds: 2, periodSeconds: 2 },
                securityContext: restrictedContainer,
                volumeMounts: [
                  { name: "data", mountPath: DATA },
                  { name: "identities", mountPath: IDENTITIES_DIR, readOnly: true },
                  // weed's unix sockets and logs go to /tmp.
                  { name: "tmp", mountPath: "/tmp" },
                ],
                resources: { requests: { cpu: "100m", memory: "128Mi" }, limits: { memory: "512Mi" } },
              },
            ],
            volumes: [
              { name: "data", emptyDir: { sizeLimit: "1Gi" } },
              { name: "identities", secret: { secretName: `${name}-identities` } },
              { name: "tmp", emptyDir: { sizeLimit: "64Mi" } },
            ],
          },
        },
      },
    },
  ];
}

/** The Secret `waxctl df deploy --backup-credentials-secret` names: the keys the runtime's S3 client reads. */
export function credentialsSecret(namespace: string, name: string, accessKeyId: string, secretKey: string): Manifest {
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name, namespace },
    type: "Opaque",
    stringData: { AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretKey },
  };
}

export interface OpenBucket {
  readonly bucket: BackupBucket;
  close(): void;
}

/**
 * The bucket as the test sees it: `kubectl port-forward` to the store's Service on a free
 * local port, and the runtime's BackupBucket (the same client backups and restores use)
 * with the given keys and prefix.
 */
export async function openBucket(
  settings: Pick<ObjectStoreSettings, "namespace" | "name" | "bucket">,
  access: { readonly accessKeyId: string; readonly secretAccessKey: string; readonly prefix: string },
  env: NodeJS.ProcessEnv,
): Promise<OpenBucket> {
  const forward: ChildProcess = spawn(
    "kubectl",
    ["port-forward", "-n", settings.namespace, `service/${settings.name}`, `:${S3_PORT}`, "--address=127.0.0.1"],
    { env, stdio: ["ignore", "pipe", "pipe"] },
  );
  let output = "";
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`kubectl port-forward gave no port in 30 s: ${output}`)), 30_000);
    const read = (d: Buffer): void => {
      output += d.toString();
      const m = /Forwarding from 127\.0\.0\.1:(\d+)/.exec(output);
      if (m !== null) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    };
    forward.stdout?.on("data", read);
    forward.stderr?.on("data", read);
    forward.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`kubectl port-forward exited (${code}): ${output}`));
    });
  });
  const bucket = new BackupBucket({
    endpoint: `http://127.0.0.1:${port}`,
    bucket: settings.bucket,
    prefix: access.prefix,
    credentials: { accessKeyId: access.accessKeyId, secretAccessKey: access.secretAccessKey },
  });
  return {
    bucket,
    close: () => {
      bucket.close();
      forward.kill("SIGTERM");
    },
  };
}

/** The complete backup sets under the bucket's prefix (those with a manifest), oldest first. */
export async function completeSets(bucket: BackupBucket): Promise<string[]> {
  const keys = (await bucket.list(bucket.setsPrefix)).map((o) => o.key);
  return keys
    .filter((k) => k.endsWith("/manifest.json"))
    .map((k) => k.slice(bucket.setsPrefix.length).split("/")[0] ?? k)
    .sort();
}

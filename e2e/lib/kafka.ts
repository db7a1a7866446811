// A Kafka broker and Kafka clients as Kubernetes objects for the kind suite, as pure
// functions of their settings. The broker is one KRaft node (broker and controller) of the
// waxflow-kafka image (images/kafka.ts): a SASL_PLAINTEXT listener with PLAIN users whose
// JAAS file comes from a Secret, storage formatted by an init container, read-only root
// filesystem, every pod fit for Pod Security "restricted". The clients are pods of the
// runtime image running node on the connector's own client module, which the image
// carries: the broker image has no shell and no admin scripts.

/** A Kubernetes object as kubectl takes it. */
export type Manifest = Readonly<Record<string, unknown>>;

export interface BrokerSettings {
  readonly namespace: string;
  /** The StatefulSet's and the Service's name. */
  readonly name: string;
  readonly image: string;
  /** The KRaft cluster id: 16 bytes, URL-safe base64 (22 characters). */
  readonly clusterId: string;
  /** PLAIN users, name to password; `admin` is the broker's own (inter-broker) login. */
  readonly users: Readonly<Record<string, string>>;
}

export const KAFKA_PORT = 9092;
const CONTROLLER_PORT = 9093;
const UID = 65532;
const DATA = "/var/lib/kafka";
const JAAS_DIR = "/etc/kafka/jaas";
const JAAS_FILE = "kafka_server_jaas.conf";
/** The connector's client, in the runtime image (built from runtime/src/connectors/kafka/client.ts). */
const CLIENT_MODULE = "/node_modules/waxflow/dist/connectors/kafka/client.js";

/** `host:port` of the broker's SASL_PLAINTEXT listener, as clients in the cluster reach it. */
export function brokerAddress(settings: Pick<BrokerSettings, "name" | "namespace">): string {
  return `${settings.name}.${settings.namespace}.svc:${KAFKA_PORT}`;
}

const labels = (name: string): Record<string, string> => ({ "app.kubernetes.io/name": name });

/** What Pod Security "restricted" asks of every container. */
const restrictedContainer = {
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  runAsNonRoot: true,
  capabilities: { drop: ["ALL"] },
};
const restrictedPod = {
  runAsNonRoot: true,
  runAsUser: UID,
  runAsGroup: UID,
  seccompProfile: { type: "RuntimeDefault" },
};

/** JAAS option values are quoted strings; the suite's names and passwords need no escapes. */
function quoted(value: string): string {
  if (!/^[\w.-]+$/.test(value)) throw new Error(`Kafka credential ${JSON.stringify(value)}: use [A-Za-z0-9_.-] only`);
  return `"${value}"`;
}

/** The broker's JAAS file: its own login (`admin`) and every PLAIN user it accepts. */
export function jaasConfig(users: Readonly<Record<string, string>>): string {
  const admin = users.admin;
  if (admin === undefined) throw new Error("Kafka users: `admin` (the broker's own login) is missing");
  const accepted = Object.entries(users).map(([user, password]) => `  user_${user}=${quoted(password)}`);
  return [
    "KafkaServer {",
    "  org.apache.kafka.common.security.plain.PlainLoginModule required",
    `  username="admin" password=${quoted(admin)}`,
    `${accepted.join("\n")};`,
    "};",
    "",
  ].join("\n");
}

/** server.properties: one node, SASL_PLAINTEXT for clients, the controller on loopback. */
export function serverProperties(settings: Pick<BrokerSettings, "name" | "namespace">): string {
  return [
    "process.roles=broker,controller",
    "node.id=1",
    `controller.quorum.voters=1@127.0.0.1:${CONTROLLER_PORT}`,
    `listeners=SASL_PLAINTEXT://:${KAFKA_PORT},CONTROLLER://127.0.0.1:${CONTROLLER_PORT}`,
    `advertised.listeners=SASL_PLAINTEXT://${brokerAddress(settings)}`,
    "controller.listener.names=CONTROLLER",
    "listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
    "inter.broker.listener.name=SASL_PLAINTEXT",
    "sasl.enabled.mechanisms=PLAIN",
    "sasl.mechanism.inter.broker.protocol=PLAIN",
    `log.dirs=${DATA}/data`,
    "num.partitions=3",
    "auto.create.topics.enable=false",
    "offsets.topic.replication.factor=1",
    "offsets.topic.num.partitions=1",
    "transaction.state.log.replication.factor=1",
    "transaction.state.log.min.isr=1",
    "transaction.state.log.num.partitions=1",
    "group.initial.rebalance.delay.ms=0",
    "",
  ].join("\n");
}

/** The broker: its JAAS Secret, its configuration, its Service and its StatefulSet. */
export function brokerManifests(settings: BrokerSettings): Manifest[] {
  const { name, namespace, image } = settings;
  const meta = (suffix: string) => ({ name: `${name}${suffix}`, namespace, labels: labels(name) });
  const java = (heap: string, ...args: string[]): string[] => [
    heap,
    `-Djava.security.auth.login.config=${JAAS_DIR}/${JAAS_FILE}`,
    ...args,
  ];
  const mounts = [
    { name: "config", mountPath: "/config", readOnly: true },
    { name: "jaas", mountPath: JAAS_DIR, readOnly: true },
    { name: "data", mountPath: DATA },
    // The JVM's and the compression libraries' temporary files (snappy, zstd unpack their .so here).
    { name: "tmp", mountPath: "/tmp" },
  ];
  return [
    {
      apiVersion: "v1",
      kind: "Secret",
      metadata: meta("-jaas"),
      type: "Opaque",
      stringData: { [JAAS_FILE]: jaasConfig(settings.users) },
    },
    {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: meta("-config"),
      data: { "server.properties": serverProperties(settings) },
    },
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: meta(""),
      spec: { selector: labels(name), ports: [{ name: "kafka", port: KAFKA_PORT, targetPort: KAFKA_PORT }] },
    },
    {
      apiVersion: "apps/v1",
      kind: "StatefulSet",
      metadata: meta(""),
      spec: {
        serviceName: name,
        replicas: 1,
        selector: { matchLabels: labels(name) },
        template: {
          metadata: { labels: labels(name) },
          spec: {
            securityContext: { ...restrictedPod, fsGroup: UID },
            automountServiceAccountToken: false,
            terminationGracePeriodSeconds: 30,
            initContainers: [
              {
                name: "format",
                image,
                // The image's entrypoint is java on the jars; the arguments pick the class.
                args: java(
                  "-Xmx256m",
                  "kafka.tools.StorageTool",
                  "format",
                  // One argument: an id may start with "-".
                  `--cluster-id=${settings.clusterId}`,
                  "-c",
                  "/config/server.properties",
                  "--ignore-formatted",
                ),
                securityContext: restrictedContainer,
                volumeMounts: mounts,
                resources: { requests: { cpu: "100m", memory: "384Mi" }, limits: { memory: "512Mi" } },
              },
            ],
            containers: [
              {
                name: "kafka",
                image,
                args: java("-Xmx384m", "-Xms128m", "kafka.Kafka", "/config/server.properties"),
                ports: [{ name: "kafka", containerPort: KAFKA_PORT }],
                readinessProbe: {
                  tcpSocket: { port: KAFKA_PORT },
                  initialDelaySeconds: 5,
                  periodSeconds: 3,
                  failureThreshold: 3,
                },
                securityContext: restrictedContainer,
                volumeMounts: mounts,
                resources: { requests: { cpu: "200m", memory: "640Mi" }, limits: { memory: "1Gi" } },
              },
            ],
            volumes: [
              { name: "config", configMap: { name: `${name}-config` } },
              { name: "jaas", secret: { secretName: `${name}-jaas` } },
              { name: "tmp", emptyDir: { sizeLimit: "256Mi" } },
            ],
          },
        },
        volumeClaimTemplates: [
          {
            metadata: { name: "data" },
            spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "1Gi" } } },
          },
        ],
      },
    },
  ];
}

/** The variables examples/kafka-anonymize.ts and the client pods read, as a Secret. */
export function clientSecret(
  namespace: string,
  name: string,
  env: {
    readonly brokers: string;
    readonly username: string;
    readonly password: string;
    readonly inTopic: string;
    readonly outTopic: string;
  },
): Manifest {
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name, namespace },
    type: "Opaque",
    stringData: {
      KAFKA_BROKERS: env.brokers,
      KAFKA_SASL_MECHANISM: "PLAIN",
      KAFKA_SASL_USERNAME: env.username,
      KAFKA_SASL_PASSWORD: env.password,
      KAFKA_IN_TOPIC: env.inTopic,
      KAFKA_OUT_TOPIC: env.outTopic,
    },
  };
}

// The client scripts run as ES modules (`node --input-type=module -e`). Each reads the
// broker, credentials and topics from the Secret's variables and retries its first
// request while the broker settles (a new broker may refuse metadata for a few seconds).
const PRELUDE = `
const { KafkaAdmin, IdempotentProducer, PartitionReader } = await import(${JSON.stringify(CLIENT_MODULE)});
const env = process.env;
const brokers = env.KAFKA_BROKERS.split(",");
const config = { sasl: { mechanism: env.KAFKA_SASL_MECHANISM, username: env.KAFKA_SASL_USERNAME, password: env.KAFKA_SASL_PASSWORD } };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function retried(what, fn) {
  for (let attempt = 1; ; attempt++) {
    try { return await fn(); } catch (err) {
      if (attempt >= 30) throw err;
      console.error(what + ": " + (err?.message ?? err) + "; retrying");
      await sleep(2000);
    }
  }
}
`;

/** Creates the input and output topics, IN_PARTITIONS and OUT_PARTITIONS partitions. */
export const CREATE_TOPICS = `${PRELUDE}
const admin = new KafkaAdmin(brokers, config);
for (const [topic, partitions] of [[env.KAFKA_IN_TOPIC, env.IN_PARTITIONS], [env.KAFKA_OUT_TOPIC, env.OUT_PARTITIONS]]) {
  await retried("create " + topic, async () => {
    const counts = await admin.partitionCounts([topic]);
    if (!counts.has(topic)) await admin.createTopic(topic, Number(partitions));
  });
  // A topic just created shows in the metadata a moment later.
  const count = await retried("describe " + topic, async () => {
    const n = (await admin.partitionCounts([topic])).get(topic);
    if (n === undefined) throw new Error("not in the metadata yet");
    return n;
  });
  console.log("topic " + topic + " " + count);
}
await admin.close();
`;

/**
 * Writes MESSAGES events to the input topic, BATCH every INTERVAL_MS, keyed by id so they
 * spread over the partitions; every FILTER_EVERY-th is a bytewax address the example drops.
 * Logs `sent N` after each batch.
 */
export const PRODUCE = `${PRELUDE}
const producer = new IdempotentProducer(brokers, "e2e-producer", config);
const total = Number(env.MESSAGES), batch = Number(env.BATCH), every = Number(env.FILTER_EVERY);
for (let sent = 0; sent < total; ) {
  const records = [];
  for (let i = sent; i < Math.min(total, sent + batch); i++) {
    const email = i % every === 0 ? "staff" + i + "@bytewax.io" : "user" + i + "@example.com";
    records.push({ topic: env.KAFKA_IN_TOPIC, key: Buffer.from(String(i)), value: Buffer.from(JSON.stringify({ id: i, email })) });
  }
  await retried("send", () => producer.send(records));
  sent += records.length;
  console.log("sent " + sent);
  await sleep(Number(env.INTERVAL_MS));
}
await producer.close();
console.log("done");
`;

/**
 * Reads the output topic as a read_committed consumer sees it, until at least EXPECTED
 * records are there and nothing more came for QUIET_MS (so late duplicates show too), or
 * DEADLINE_MS passed. Prints each value on a line after `records:`.
 */
export const CONSUME = `${PRELUDE}
const topic = env.KAFKA_OUT_TOPIC;
const admin = new KafkaAdmin(brokers, config);
const ends = await retried("end offsets", () => admin.offsets(topic, "end", true));
const readers = ends.map((_, p) => new PartitionReader(brokers, topic, p, { committed: true, maxBytes: 4 << 20, config }));
const next = ends.map(() => 0n);
const values = [];
const deadline = Date.now() + Number(env.DEADLINE_MS);
let quietSince = Date.now();
while (Date.now() < deadline) {
  let got = 0;
  for (const [p, reader] of readers.entries()) {
    const fetched = await retried("fetch", () => reader.fetch(next[p], 500));
    for (const r of fetched.records) values.push(r.value?.toString() ?? "null");
    got += fetched.records.length;
    next[p] = fetched.next;
  }
  if (got > 0) quietSince = Date.now();
  else if (values.length >= Number(env.EXPECTED) && Date.now() - quietSince >= Number(env.QUIET_MS)) break;
}
await Promise.all([admin.close(), ...readers.map((r) => r.close())]);
console.log("records:");
for (const v of values) console.log(v);
`;

/** A pod that runs `script` once on the runtime image's node, with the Secret's variables. */
export function clientPod(options: {
  readonly namespace: string;
  readonly name: string;
  readonly image: string;
  readonly secret: string;
  readonly script: string;
  readonly env?: Readonly<Record<string, string>>;
}): Manifest {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: options.name, namespace: options.namespace, labels: { "app.kubernetes.io/name": options.name } },
    spec: {
      restartPolicy: "Never",
      automountServiceAccountToken: false,
      securityContext: restrictedPod,
      containers: [
        {
          name: "client",
          image: options.image,
          imagePullPolicy: "IfNotPresent",
          command: ["/usr/local/bin/node", "--input-type=module", "-e", options.script],
          envFrom: [{ secretRef: { name: options.secret } }],
          env: Object.entries(options.env ?? {}).map(([name, value]) => ({ name, value })),
          securityContext: restrictedContainer,
          resources: { requests: { cpu: "50m", memory: "96Mi" }, limits: { memory: "256Mi" } },
        },
      ],
    },
  };
}

/** The `waxflow_kafka_consumer_lag` samples of a Prometheus text page, by `topic/partition`. */
export function consumerLags(metrics: string): Map<string, number> {
  const lags = new Map<string, number>();
  for (const line of metrics.split("\n")) {
    const m = /^waxflow_kafka_consumer_lag\{([^}]*)\} (\S+)$/.exec(line);
    if (m === null) continue;
    const label = (name: string): string => new RegExp(`${name}="([^"]*)"`).exec(m[1] ?? "")?.[1] ?? "?";
    lags.set(`${label("topic")}/${label("partition")}`, Number(m[2]));
  }
  return lags;
}

// The Dataflow resource, written once. The CRD YAML (../dataflows.waxflow.io.yaml) and the
// TypeScript types (types.gen.ts) are generated from these objects by `npm run gen -w crds`.
// `tsType` is a hint for the type generator only; it is stripped from the YAML.
import { SAVEPOINT_ID_PATTERN } from "./contract.ts";

export const GROUP = "waxflow.io";
export const VERSION = "v1alpha1";
export const KIND = "Dataflow";
export const PLURAL = "dataflows";
const SINGULAR = "dataflow";
const SHORT_NAMES = ["df"];
export const CRD_NAME = `${PLURAL}.${GROUP}`;
export const API_VERSION = `${GROUP}/${VERSION}`;

// Limits that clients (waxctl) check before the API server does; the rules below use them.
/** The name becomes the StatefulSet's and its pods' names, with room for the ordinal. */
export const MAX_NAME_LENGTH = 52;
export const IMAGE_BY_DIGEST_PATTERN = "^[a-z0-9][a-zA-Z0-9._/:-]*@sha256:[0-9a-f]{64}$";
export const MIN_SNAPSHOT_INTERVAL = "100ms";
/** Kubernetes label keys and values, for the labels the operator puts into NetworkPolicies. */
export const LABEL_KEY_PATTERN =
  "^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$";
export const LABEL_VALUE_PATTERN = "^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$";

// Go duration strings as accepted by CEL's duration(): "500ms", "10s", "1m30s".
const DURATION_PATTERN = "^([0-9]+(\\.[0-9]+)?(ns|us|ms|s|m|h))+$";
const QUANTITY_PATTERN =
  "^(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$";

const NAME = { type: "string", maxLength: 253 } as const;

/** Containers as far as the guard reads them. Bounded, so the API server can bound the rules' cost. */
const guardedContainers = {
  type: "array",
  maxItems: 64,
  description: "core/v1 Containers of the pod; the one named `waxflow` is merged over the dataflow's container.",
  items: {
    type: "object",
    "x-kubernetes-preserve-unknown-fields": true,
    description: "A core/v1 Container.",
    properties: {
      name: { ...NAME, description: "The container's name; `waxflow` is the dataflow's own container." },
      securityContext: {
        type: "object",
        "x-kubernetes-preserve-unknown-fields": true,
        description: "core/v1 SecurityContext of the container.",
        properties: {
          privileged: {
            type: "boolean",
            description: "Refused unless spec.allowPrivileged (and the operator) allow it.",
          },
          allowPrivilegeEscalation: {
            type: "boolean",
            description: "true is refused unless spec.allowPrivileged (and the operator) allow it.",
          },
          capabilities: {
            type: "object",
            "x-kubernetes-preserve-unknown-fields": true,
            description: "core/v1 Capabilities of the container.",
            properties: {
              add: {
                type: "array",
                maxItems: 64,
                description: "Refused unless spec.allowPrivileged (and the operator) allow it.",
                items: { type: "string", maxLength: 64, description: "A Linux capability, e.g. NET_ADMIN." },
              },
            },
          },
        },
      },
    },
  },
} as const;

export const CONTAINER_LISTS = ["containers", "initContainers", "ephemeralContainers"] as const;

/**
 * What no Dataflow pod may ask for through spec.podTemplate unless spec.allowPrivileged is
 * set (and the operator allows it, which only the controller knows): each is a way out of
 * the container onto the node. Checked here so `kubectl apply` refuses it, naming the field.
 */
export const PRIVILEGED_FIELDS = {
  hostNetwork: "host namespaces are refused",
  hostPID: "host namespaces are refused",
  hostIPC: "host namespaces are refused",
  "securityContext.privileged": "privileged containers are refused",
  "securityContext.allowPrivilegeEscalation": "privilege escalation is refused",
  "securityContext.capabilities.add": "added capabilities are refused",
  hostPath: "hostPath volumes are refused",
} as const;

const HOW_TO_ALLOW = "(spec.allowPrivileged, if the operator allows privileged Dataflows)";

/** A savepoint is read from the bucket: restoreFrom without a backup bucket could never start. */
const RESTORE_FROM_RULE = {
  rule: "!has(self.restoreFrom) || (has(self.recovery) && self.recovery.enabled == true && has(self.recovery.backup))",
  message:
    "spec.restoreFrom needs spec.recovery.enabled: true and spec.recovery.backup (a bucket): the savepoint is read from the bucket",
} as const;

function podTemplateRules() {
  const allowed = "self.?allowPrivileged.orValue(false)";
  const podSpec = "self.?podTemplate.?spec";
  // Lists through has(), not optionals: the cost estimate keeps their maxItems only so.
  const hasList = (list: string) =>
    `has(self.podTemplate) && has(self.podTemplate.spec) && has(self.podTemplate.spec.${list})`;
  const hostNamespaces = (["hostNetwork", "hostPID", "hostIPC"] as const).map((field) => ({
    rule: `${allowed} || !${podSpec}.?${field}.orValue(false)`,
    message: `spec.podTemplate.spec.${field}: ${PRIVILEGED_FIELDS[field]} ${HOW_TO_ALLOW}`,
  }));
  const containerChecks = [
    ["securityContext.privileged", "c.?securityContext.?privileged.orValue(false)"],
    ["securityContext.allowPrivilegeEscalation", "c.?securityContext.?allowPrivilegeEscalation.orValue(false)"],
    ["securityContext.capabilities.add", "size(c.?securityContext.?capabilities.?add.orValue([])) > 0"],
  ] as const;
  const containers = CONTAINER_LISTS.flatMap((list) =>
    containerChecks.map(([field, bad]) => ({
      rule: `${allowed} || !(${hasList(list)}) || self.podTemplate.spec.${list}.all(c, !(${bad}))`,
      // Names the (first) container: the list's order is not the pod's (the waxflow container
      // is merged in). The API server's cost estimate admits only this form: filter() or
      // join() lose the names' maxLength and exceed its budget.
      messageExpression: `'spec.podTemplate.spec.${list}[name=' + self.podTemplate.spec.${list}.map(c, ${bad}, c.name)[0] + '].${field}: ${PRIVILEGED_FIELDS[field]} ${HOW_TO_ALLOW}'`,
    })),
  );
  const volumes = {
    rule: `${allowed} || !(${hasList("volumes")}) || self.podTemplate.spec.volumes.all(v, !has(v.hostPath))`,
    messageExpression: `'spec.podTemplate.spec.volumes[name=' + self.podTemplate.spec.volumes.map(v, has(v.hostPath), v.name)[0] + '].hostPath: ${PRIVILEGED_FIELDS.hostPath} ${HOW_TO_ALLOW}'`,
  };
  return [...hostNamespaces, ...containers, volumes];
}

/** spec.upgradeMode: where the new processes of a roll take their state from. */
export const UPGRADE_MODES = ["stateless", "last-state", "savepoint"] as const;

/** A savepoint is a copy of a complete backup set: savepoint mode needs backups. */
const UPGRADE_RULES = [
  {
    rule: "self.?upgradeMode.orValue('last-state') != 'savepoint' || (self.?recovery.?enabled.orValue(false) && self.?recovery.?backup.hasValue())",
    message:
      "spec.upgradeMode savepoint needs spec.recovery.enabled and spec.recovery.backup (savepoints are copies of backup sets in its bucket): set them, or use upgradeMode last-state",
  },
] as const;

const retentionPolicy = {
  type: "string",
  enum: ["Retain", "Delete"],
  default: "Retain",
} as const;

const condition = {
  title: "DataflowCondition",
  type: "object",
  description:
    "One aspect of the Dataflow's state, as Kubernetes conditions are read by `kubectl wait --for=condition=Ready`.",
  required: ["type", "status"],
  properties: {
    type: {
      type: "string",
      enum: ["Ready", "Progressing", "Degraded"],
      description:
        "Ready: every process runs and the worker cluster has formed. Progressing: a deploy, scale or upgrade is under way. Degraded: something needs attention (the message says what).",
    },
    status: { type: "string", enum: ["True", "False", "Unknown"], description: "Whether the condition holds." },
    reason: { type: "string", description: "CamelCase cause, stable for automation." },
    message: { type: "string", description: "What is happening and, when something is wrong, what to do." },
    lastTransitionTime: { type: "string", format: "date-time", description: "When status last changed." },
    observedGeneration: {
      type: "integer",
      format: "int64",
      description: "metadata.generation of the spec this condition was computed from.",
    },
  },
} as const;

export const specSchema = {
  title: "DataflowSpec",
  type: "object",
  description: "The dataflow to run: its image and entry module, how many processes and workers, recovery.",
  required: ["image", "module"],
  properties: {
    image: {
      type: "string",
      maxLength: 512,
      description: "Dataflow image referenced by digest (built on waxflow-runtime), e.g. registry/app@sha256:<64 hex>.",
      "x-kubernetes-validations": [
        {
          rule: `self.matches('${IMAGE_BY_DIGEST_PATTERN}')`,
          message: "image must be referenced by digest, e.g. registry.example/app@sha256:<64 hex digits>",
          messageExpression:
            "'image must be referenced by digest (REGISTRY/NAME@sha256:<64 hex digits>), got \"' + self + '\": `waxctl image build FILE` prints the reference by digest; for a pushed tag, `crane digest REF` or `docker buildx imagetools inspect REF` shows its digest'",
        },
      ],
    },
    module: {
      type: "string",
      minLength: 1,
      maxLength: 1024,
      description: "Entry module passed to `waxflow run`, optionally `path:name` for a named export or factory.",
    },
    processes: {
      type: "integer",
      format: "int32",
      minimum: 1,
      maximum: 1000,
      default: 1,
      description: "Processes (pods) in the worker cluster. A change restarts every process together.",
    },
    workersPerProcess: {
      type: "integer",
      format: "int32",
      minimum: 1,
      maximum: 256,
      default: 1,
      description: "Workers in each process.",
    },
    state: {
      type: "string",
      enum: ["running", "suspended"],
      default: "running",
      description: "suspended stops every process and keeps the recovery volumes; running resumes from them.",
    },
    restartNonce: {
      type: "integer",
      format: "int64",
      description: "Change to any other value to restart every process (recovery state is kept).",
    },
    upgradeMode: {
      type: "string",
      enum: [...UPGRADE_MODES],
      default: "last-state",
      description:
        "Where the new processes of a roll that replaces them (an upgrade or a scale) take their state from. stateless: empty state (WAXFLOW_START_FROM=fresh:<generation>). last-state: their recovery volumes, or the newest backup set for an empty one. savepoint: the operator first takes a savepoint of the running processes (through process 0's API; needs recovery.backup) and starts the new ones from it (WAXFLOW_START_FROM=savepoint:<id>); a failed savepoint holds the roll and the running processes run on untouched; with no ready process 0 there is nothing to save and the roll goes on as last-state. Changing it restarts nothing.",
    },
    rollback: {
      title: "DataflowRollback",
      type: "object",
      default: {},
      description:
        "What happens when a roll's new processes are not all Ready within readyTimeout after the roll started (the operator records the last spec that became Ready in status.lastStableSpec). Changing it restarts nothing.",
      properties: {
        enabled: {
          type: "boolean",
          default: false,
          description:
            "Roll back to status.lastStableSpec (with savepoint mode, from the savepoint taken before the upgrade): Ready and Degraded say RolledBack and why; spec stays as written, and the next edit of it starts a new roll. false: Progressing turns False with reason UpgradeStuck and the roll's pods stay as they are.",
        },
        readyTimeout: {
          type: "string",
          pattern: DURATION_PATTERN,
          maxLength: 64,
          default: "5m",
          description:
            "How long a roll's new processes have to become Ready, from the roll's start, as a duration such as 5m.",
        },
      },
    },
    recovery: {
      title: "DataflowRecovery",
      type: "object",
      default: {},
      description:
        "Snapshots of state to a volume per process, so a restarted, rescaled or upgraded dataflow resumes where it stopped.",
      properties: {
        enabled: {
          type: "boolean",
          default: false,
          description:
            "Give every process a recovery volume (claim `recovery`, mounted at /var/lib/waxflow/recovery) and snapshot to it.",
        },
        snapshotInterval: {
          type: "string",
          pattern: DURATION_PATTERN,
          maxLength: 64,
          default: "10s",
          description: "Time between epochs (and snapshots), as a duration such as 10s.",
          "x-kubernetes-validations": [
            {
              rule: `duration(self) >= duration('${MIN_SNAPSHOT_INTERVAL}')`,
              message: `snapshotInterval must be at least ${MIN_SNAPSHOT_INTERVAL}`,
              messageExpression: `'snapshotInterval must be at least ${MIN_SNAPSHOT_INTERVAL}, got ' + self`,
            },
          ],
        },
        backupInterval: {
          type: "string",
          pattern: DURATION_PATTERN,
          maxLength: 64,
          default: "30s",
          description: "How long old snapshots are kept before garbage collection; at least snapshotInterval.",
        },
        storage: {
          title: "DataflowRecoveryStorage",
          type: "object",
          default: {},
          description: "The recovery volume of each process; fixed while recovery is enabled.",
          properties: {
            size: {
              type: "string",
              pattern: QUANTITY_PATTERN,
              default: "1Gi",
              description: "Size of each process's recovery volume, as a quantity such as 1Gi.",
            },
            storageClassName: { type: "string", description: "Storage class; the cluster default when unset." },
          },
        },
        backup: {
          title: "DataflowBackup",
          type: "object",
          description:
            "Upload a copy of every process's recovery store to an S3-compatible bucket every backupInterval, and restore from the newest complete set when a process's volume is empty (a lost volume, a new cluster).",
          required: ["bucket"],
          properties: {
            bucket: { type: "string", minLength: 3, maxLength: 63, description: "The bucket (WAXFLOW_BACKUP_BUCKET)." },
            endpoint: {
              type: "string",
              pattern: "^https?://[^\\s/]+",
              maxLength: 2048,
              description:
                "An S3-compatible endpoint URL such as http://seaweedfs.storage:8333; unset: AWS S3 of the region (WAXFLOW_BACKUP_ENDPOINT).",
            },
            prefix: {
              type: "string",
              maxLength: 512,
              description:
                "Key prefix for this dataflow's sets inside the bucket, such as prod/wordcount; give each dataflow its own (WAXFLOW_BACKUP_PREFIX).",
            },
            region: {
              type: "string",
              maxLength: 64,
              description: "The bucket's region; default us-east-1 (WAXFLOW_BACKUP_REGION).",
            },
            keep: {
              type: "integer",
              minimum: 1,
              default: 3,
              description: "Newest complete backup sets kept (WAXFLOW_BACKUP_KEEP).",
            },
            keepAge: {
              type: "string",
              pattern: DURATION_PATTERN,
              maxLength: 64,
              description:
                "Complete sets younger than this are kept whatever their number, as a duration such as 24h (WAXFLOW_BACKUP_KEEP_AGE).",
            },
            credentialsSecret: {
              title: "DataflowBackupCredentials",
              type: "object",
              required: ["name"],
              description:
                "A Secret in the Dataflow's namespace holding the access key: passed to every process as AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY. Unset: the pods' own AWS credentials (e.g. IRSA).",
              properties: {
                name: { type: "string", minLength: 1, maxLength: 253, description: "The Secret's name." },
                accessKeyIdKey: {
                  type: "string",
                  default: "AWS_ACCESS_KEY_ID",
                  description: "The Secret's key holding the access key id.",
                },
                secretAccessKeyKey: {
                  type: "string",
                  default: "AWS_SECRET_ACCESS_KEY",
                  description: "The Secret's key holding the secret access key.",
                },
              },
            },
          },
        },
        dropRemovedSteps: {
          type: "boolean",
          description:
            "Drop recovered state of steps the dataflow no longer has (renamed or removed) instead of refusing to start (WAXFLOW_DROP_REMOVED_STEPS). Set it for the one deploy that renames a step, then unset it.",
        },
        retention: {
          title: "DataflowVolumeRetention",
          type: "object",
          default: {},
          description: "What happens to recovery volumes when the Dataflow is deleted or scaled down.",
          properties: {
            whenDeleted: {
              ...retentionPolicy,
              description:
                "Retain keeps the volumes after the Dataflow is deleted (a Dataflow of the same name resumes from them); Delete deletes them with it.",
            },
            whenScaled: {
              ...retentionPolicy,
              description:
                "Retain keeps the volumes of processes removed by a scale-down (their state is handed over first); Delete deletes them.",
            },
          },
        },
      },
      "x-kubernetes-validations": [
        {
          rule: "!has(self.snapshotInterval) || !has(self.backupInterval) || duration(self.backupInterval) >= duration(self.snapshotInterval)",
          message: "recovery.backupInterval must be greater than or equal to recovery.snapshotInterval",
          messageExpression:
            "'recovery.backupInterval (' + self.backupInterval + ') must be greater than or equal to recovery.snapshotInterval (' + self.snapshotInterval + ')'",
        },
        {
          rule: "!has(oldSelf.storage) || !has(self.storage) || oldSelf.enabled != true || self.enabled != true || self.storage == oldSelf.storage",
          message: "recovery.storage cannot change while recovery is enabled: disable recovery first",
        },
      ],
    },
    restoreFrom: {
      title: "DataflowRestoreFrom",
      type: "object",
      required: ["savepoint"],
      description:
        "Start from this savepoint (`waxctl df deploy --from-savepoint`, `waxctl df fork`): each process applies it once (WAXFLOW_START_FROM=savepoint:<id>), then keeps its volume's newer state. Needs recovery.backup: the savepoint is read from the bucket.",
      properties: {
        savepoint: {
          type: "string",
          minLength: 1,
          maxLength: 63,
          pattern: SAVEPOINT_ID_PATTERN,
          description: "The savepoint's id, as `waxctl df savepoint list` shows it.",
        },
        prefix: {
          type: "string",
          maxLength: 512,
          description:
            "The backup prefix the savepoint lives under, such as another Dataflow's for a fork (WAXFLOW_SAVEPOINT_PREFIX); unset: recovery.backup.prefix.",
        },
      },
    },
    env: {
      type: "array",
      tsType: "V1EnvVar[]",
      description: "Extra environment variables for every process (core/v1 EnvVar).",
      "x-kubernetes-list-type": "map",
      "x-kubernetes-list-map-keys": ["name"],
      items: {
        type: "object",
        required: ["name"],
        "x-kubernetes-preserve-unknown-fields": true,
        description: "A core/v1 EnvVar; fields other than name are checked when the controller applies the pods.",
        properties: {
          name: {
            type: "string",
            minLength: 1,
            maxLength: 256,
            description: "Name of the variable.",
            "x-kubernetes-validations": [
              {
                rule: "!self.startsWith('WAXFLOW_')",
                message: "WAXFLOW_* variables are set by the controller from the spec",
                messageExpression:
                  "'env ' + self + ': WAXFLOW_* variables are set by the controller from the spec; use the matching spec field'",
              },
            ],
          },
        },
      },
    },
    envFrom: {
      type: "array",
      tsType: "V1EnvFromSource[]",
      description: "core/v1 EnvFromSource entries for every process.",
      items: { type: "object", "x-kubernetes-preserve-unknown-fields": true, description: "A core/v1 EnvFromSource." },
    },
    resources: {
      type: "object",
      tsType: "V1ResourceRequirements",
      description: "core/v1 ResourceRequirements of the dataflow container.",
      "x-kubernetes-preserve-unknown-fields": true,
    },
    serviceAccountName: {
      type: "string",
      maxLength: 253,
      description: "Service account the processes run as; the namespace's default when unset.",
    },
    stateQuery: {
      type: "boolean",
      default: false,
      description:
        "Serve per-key state queries (GET /state/STEP?key=K on port 3030, `waxctl df state`): off by default, since state is user data. Requests must carry a token derived from the Dataflow's cluster Secret, so only users who may read that Secret can query; the NetworkPolicy admits port 3030 only from the operator's namespace (and the API clients the chart names).",
    },
    allowPrivileged: {
      type: "boolean",
      default: false,
      description:
        "Lets podTemplate ask for what a Dataflow's pods are otherwise refused: privileged containers, host namespaces, hostPath volumes, added capabilities, privilege escalation. The operator must allow it too (chart value allowPrivilegedDataflows, waxctl install --allow-privileged-dataflows); otherwise the Dataflow fails, naming the fields.",
    },
    podTemplate: {
      type: "object",
      tsType: "V1PodTemplateSpec",
      description:
        "core/v1 PodTemplateSpec merged over the generated one: labels and annotations are added, pod spec fields set, the container named `waxflow` merged, other containers and volumes appended.",
      "x-kubernetes-preserve-unknown-fields": true,
      // Only the fields the guard below reads are declared (every object keeps its unknown fields).
      properties: {
        spec: {
          type: "object",
          "x-kubernetes-preserve-unknown-fields": true,
          description: "core/v1 PodSpec fields set over the generated pod spec.",
          properties: {
            hostNetwork: {
              type: "boolean",
              description: "Refused unless spec.allowPrivileged (and the operator) allow it.",
            },
            hostPID: {
              type: "boolean",
              description: "Refused unless spec.allowPrivileged (and the operator) allow it.",
            },
            hostIPC: {
              type: "boolean",
              description: "Refused unless spec.allowPrivileged (and the operator) allow it.",
            },
            containers: guardedContainers,
            initContainers: guardedContainers,
            ephemeralContainers: guardedContainers,
            volumes: {
              type: "array",
              maxItems: 256,
              description: "core/v1 Volumes appended to the pod's own.",
              items: {
                type: "object",
                "x-kubernetes-preserve-unknown-fields": true,
                description: "A core/v1 Volume.",
                properties: {
                  name: { ...NAME, description: "The volume's name, unique in the pod." },
                  hostPath: {
                    type: "object",
                    "x-kubernetes-preserve-unknown-fields": true,
                    description: "Refused unless spec.allowPrivileged (and the operator) allow it.",
                  },
                },
              },
            },
          },
        },
      },
    },
  },
  "x-kubernetes-validations": [...podTemplateRules(), RESTORE_FROM_RULE, ...UPGRADE_RULES],
} as const;

const statusSchema = {
  title: "DataflowStatus",
  type: "object",
  description: "What the controller observed and did, written by the controller only.",
  properties: {
    observedGeneration: {
      type: "integer",
      format: "int64",
      description: "metadata.generation of the spec the controller last acted on.",
    },
    lastReconcileTime: {
      type: "string",
      format: "date-time",
      description:
        "When the controller last wrote this status. A running controller refreshes it every minute, so an older time means no controller is reconciling (kubectl get df: Reconciled).",
    },
    phase: {
      type: "string",
      enum: ["Pending", "Deploying", "Running", "Suspended", "Failed", "Deleting"],
      description:
        "Pending: no process runs yet (being created, scheduled or pulled). Deploying: a roll is under way, or processes run but not all are ready. Running: every process is ready. Failed: the spec cannot be carried out, or a process failed twice in a row the same way (see the Degraded condition).",
    },
    processes: { type: "integer", format: "int32", description: "Processes (pods) that exist now." },
    readyProcesses: { type: "integer", format: "int32", description: "Processes whose pods are ready." },
    ready: { type: "string", description: "readyProcesses/desired processes, for printing." },
    selector: { type: "string", description: "Label selector of the pods, for the scale subresource." },
    image: { type: "string", description: "Image the running processes were started from." },
    conditions: {
      type: "array",
      description: "Ready, Progressing and Degraded, each with a reason and a message.",
      items: condition,
      "x-kubernetes-list-type": "map",
      "x-kubernetes-list-map-keys": ["type"],
    },
    rollout: {
      title: "DataflowRollout",
      type: "object",
      description:
        "Write-ahead record of a roll in flight, written before each step so a restarted controller resumes it.",
      required: ["kind", "stage", "generation", "from", "to"],
      properties: {
        kind: {
          type: "string",
          enum: ["scale", "upgrade"],
          description: "scale: only the process count changes. upgrade: anything else that restarts the processes.",
        },
        stage: {
          type: "string",
          enum: ["Savepointing", "Stopping", "HandingOff", "Starting"],
          description:
            "Savepointing (upgradeMode savepoint): a savepoint of the running processes is taken; nothing is stopped yet. Stopping: every old process stops. HandingOff (a scale-down with recovery): the new processes run beside holders, the pods beyond them, which hand their volumes' recovery data over. Starting: the new processes alone.",
        },
        generation: { type: "integer", format: "int64", description: "metadata.generation the roll carries out." },
        startedAt: { type: "string", format: "date-time", description: "When the roll started." },
        from: {
          type: "integer",
          format: "int32",
          description: "Processes of the cluster being replaced: their volumes hold its recovery data.",
        },
        to: { type: "integer", format: "int32", description: "Processes of the cluster being started." },
        savepoint: {
          title: "DataflowRolloutSavepoint",
          type: "object",
          description: "The savepoint the roll takes before stopping anything (stage Savepointing).",
          required: ["id"],
          properties: {
            id: { type: "string", description: "The savepoint's id, chosen before it is requested." },
            error: { type: "string", description: "Why it failed: the roll is held until the spec changes." },
          },
        },
        startFrom: {
          type: "string",
          description: "WAXFLOW_START_FROM of the processes this roll starts; status.startFrom once it is complete.",
        },
      },
    },
    failures: {
      type: "array",
      description:
        "Each process that failed since it was last ready: its last failed run and how many runs in a row failed the same way (exit code and last line). Two make a crash loop: phase Failed.",
      "x-kubernetes-list-type": "map",
      "x-kubernetes-list-map-keys": ["pod"],
      items: {
        title: "DataflowProcessFailure",
        type: "object",
        description: "One process's failed runs.",
        required: ["pod", "run", "exitCode", "times"],
        properties: {
          pod: { type: "string", description: "The process's pod." },
          podUID: { type: "string", description: "Tells a pod from its replacement of the same name." },
          run: { type: "string", description: "The failed run's container ID." },
          exitCode: { type: "integer", format: "int32", description: "The failed run's exit code." },
          line: { type: "string", description: "The last line of the run's termination message: the runtime's error." },
          times: { type: "integer", format: "int32", description: "Runs in a row that failed this way." },
        },
      },
    },
    restoresReported: {
      type: "array",
      description:
        "UIDs of the current pods the operator has asked (through /status) what they restored their recovery store from, told in Restored and RestoreFellBack events: each pod is asked once.",
      maxItems: 2000,
      items: { type: "string", maxLength: 64, description: "A pod's metadata.uid." },
    },
    lastStableSpec: {
      type: "string",
      description: "JSON of the last spec whose processes all became Ready: what spec.rollback rolls back to.",
    },
    lastStableGeneration: {
      type: "integer",
      format: "int64",
      description: "metadata.generation of lastStableSpec.",
    },
    lastSavepoint: {
      title: "DataflowSavepointRef",
      type: "object",
      description:
        "The last savepoint the operator took (upgradeMode savepoint, before stopping the processes of a roll).",
      required: ["id"],
      properties: {
        id: { type: "string", description: "The savepoint's id (waxctl df savepoint list)." },
        epoch: { type: "integer", format: "int64", description: "The epoch the savepoint holds the state of." },
        createdAt: { type: "string", format: "date-time", description: "When the savepoint was complete." },
      },
    },
    startFrom: {
      type: "string",
      description:
        "WAXFLOW_START_FROM of the running pod template (fresh:<generation>, savepoint:<id>), set by the roll that chose it; a process applies each value once.",
    },
    lastRoll: {
      title: "DataflowLastRoll",
      type: "object",
      description: "The newest generation a roll started for, and when: spec.rollback.readyTimeout counts from it.",
      required: ["generation", "startedAt"],
      properties: {
        generation: { type: "integer", format: "int64", description: "metadata.generation the roll carries out." },
        startedAt: { type: "string", format: "date-time", description: "When the roll started." },
        savepoint: { type: "string", description: "The savepoint taken before it (upgradeMode savepoint)." },
      },
    },
    rolledBack: {
      title: "DataflowRolledBack",
      type: "object",
      description:
        "A rollback in effect: while metadata.generation is this generation the processes run lastStableSpec; any edit of the spec ends it.",
      required: ["generation", "toGeneration", "at", "message"],
      properties: {
        generation: { type: "integer", format: "int64", description: "The generation that was rolled back." },
        toGeneration: { type: "integer", format: "int64", description: "The generation of the spec rolled back to." },
        at: { type: "string", format: "date-time", description: "When the rollback started." },
        message: { type: "string", description: "Why: what the rolled back generation's processes were doing." },
        startFrom: {
          type: "string",
          description: "WAXFLOW_START_FROM of the rollback (the savepoint taken before the upgrade).",
        },
      },
    },
    lastReconciledSpec: {
      type: "string",
      description:
        "JSON of the spec the processes were last started with: the base of the next spec diff and the layout of the recovery data.",
    },
  },
} as const;

export const openAPIV3Schema = {
  type: "object",
  description:
    "A stream-processing dataflow (waxflow, Bytewax's model) run as a cluster of processes that the waxflow operator manages.",
  required: ["spec"],
  properties: {
    apiVersion: { type: "string", description: "waxflow.io/v1alpha1." },
    kind: { type: "string", description: "Dataflow." },
    metadata: { type: "object", tsType: "V1ObjectMeta" },
    spec: specSchema,
    status: statusSchema,
  },
  "x-kubernetes-validations": [
    {
      rule: `size(self.metadata.name) <= ${MAX_NAME_LENGTH}`,
      message: `metadata.name must be at most ${MAX_NAME_LENGTH} characters: it names the StatefulSet and its pods`,
    },
  ],
} as const;

export const customResourceDefinition = {
  apiVersion: "apiextensions.k8s.io/v1",
  kind: "CustomResourceDefinition",
  metadata: { name: CRD_NAME },
  spec: {
    group: GROUP,
    scope: "Namespaced",
    names: { plural: PLURAL, singular: SINGULAR, kind: KIND, listKind: `${KIND}List`, shortNames: SHORT_NAMES },
    versions: [
      {
        name: VERSION,
        served: true,
        storage: true,
        schema: { openAPIV3Schema },
        subresources: {
          status: {},
          scale: {
            specReplicasPath: ".spec.processes",
            statusReplicasPath: ".status.processes",
            labelSelectorPath: ".status.selector",
          },
        },
        additionalPrinterColumns: [
          {
            name: "Ready",
            type: "string",
            description: "Ready processes / desired processes",
            jsonPath: ".status.ready",
          },
          { name: "State", type: "string", jsonPath: ".spec.state" },
          { name: "Phase", type: "string", jsonPath: ".status.phase" },
          { name: "Image", type: "string", jsonPath: ".spec.image" },
          { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
          {
            name: "Reconciled",
            type: "date",
            description:
              "Age of the status: refreshed every minute while an operator runs, so a growing age means none does",
            jsonPath: ".status.lastReconcileTime",
          },
          {
            name: "Problem",
            type: "string",
            description: "What keeps the dataflow from running, such as a crash loop's error line",
            jsonPath: '.status.conditions[?(@.type=="Degraded")].message',
          },
        ],
      },
    ],
  },
} as const;

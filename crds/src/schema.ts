// The Dataflow resource, written once. The CRD YAML (../dataflows.waxflow.io.yaml) and the
// TypeScript types (types.gen.ts) are generated from these objects by `npm run gen -w crds`.
// `tsType` is a hint for the type generator only; it is stripped from the YAML.

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

// Go duration strings as accepted by CEL's duration(): "500ms", "10s", "1m30s".
const DURATION_PATTERN = "^([0-9]+(\\.[0-9]+)?(ns|us|ms|s|m|h))+$";
const QUANTITY_PATTERN =
  "^(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$";

const retentionPolicy = {
  type: "string",
  enum: ["Retain", "Delete"],
  default: "Retain",
} as const;

const condition = {
  title: "DataflowCondition",
  type: "object",
  required: ["type", "status"],
  properties: {
    type: { type: "string", enum: ["Ready", "Progressing", "Degraded"] },
    status: { type: "string", enum: ["True", "False", "Unknown"] },
    reason: { type: "string", description: "CamelCase cause, stable for automation." },
    message: { type: "string", description: "What is happening and, when something is wrong, what to do." },
    lastTransitionTime: { type: "string", format: "date-time" },
    observedGeneration: { type: "integer", format: "int64" },
  },
} as const;

export const specSchema = {
  title: "DataflowSpec",
  type: "object",
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
    recovery: {
      title: "DataflowRecovery",
      type: "object",
      default: {},
      properties: {
        enabled: { type: "boolean", default: false },
        snapshotInterval: {
          type: "string",
          pattern: DURATION_PATTERN,
          default: "10s",
          description: "Time between epochs (and snapshots), as a duration such as 10s.",
          "x-kubernetes-validations": [
            {
              rule: `duration(self) >= duration('${MIN_SNAPSHOT_INTERVAL}')`,
              message: `snapshotInterval must be at least ${MIN_SNAPSHOT_INTERVAL}`,
            },
          ],
        },
        backupInterval: {
          type: "string",
          pattern: DURATION_PATTERN,
          default: "30s",
          description: "How long old snapshots are kept before garbage collection; at least snapshotInterval.",
        },
        storage: {
          title: "DataflowRecoveryStorage",
          type: "object",
          default: {},
          properties: {
            size: { type: "string", pattern: QUANTITY_PATTERN, default: "1Gi" },
            storageClassName: { type: "string", description: "Storage class; the cluster default when unset." },
          },
        },
        retention: {
          title: "DataflowVolumeRetention",
          type: "object",
          default: {},
          description: "What happens to recovery volumes when the Dataflow is deleted or scaled down.",
          properties: {
            whenDeleted: retentionPolicy,
            whenScaled: retentionPolicy,
          },
        },
      },
      "x-kubernetes-validations": [
        {
          rule: "!has(self.snapshotInterval) || !has(self.backupInterval) || duration(self.backupInterval) >= duration(self.snapshotInterval)",
          message: "recovery.backupInterval must be greater than or equal to recovery.snapshotInterval",
        },
        {
          rule: "!has(oldSelf.storage) || !has(self.storage) || oldSelf.enabled != true || self.enabled != true || self.storage == oldSelf.storage",
          message: "recovery.storage cannot change while recovery is enabled: disable recovery first",
        },
      ],
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
        properties: {
          name: {
            type: "string",
            minLength: 1,
            "x-kubernetes-validations": [
              {
                rule: "!self.startsWith('WAXFLOW_')",
                message: "WAXFLOW_* variables are set by the controller from the spec",
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
      items: { type: "object", "x-kubernetes-preserve-unknown-fields": true },
    },
    resources: {
      type: "object",
      tsType: "V1ResourceRequirements",
      description: "core/v1 ResourceRequirements of the dataflow container.",
      "x-kubernetes-preserve-unknown-fields": true,
    },
    serviceAccountName: { type: "string", maxLength: 253 },
    podTemplate: {
      type: "object",
      tsType: "V1PodTemplateSpec",
      description:
        "core/v1 PodTemplateSpec merged over the generated one: labels and annotations are added, pod spec fields set, the container named `waxflow` merged, other containers and volumes appended.",
      "x-kubernetes-preserve-unknown-fields": true,
    },
  },
} as const;

const statusSchema = {
  title: "DataflowStatus",
  type: "object",
  properties: {
    observedGeneration: { type: "integer", format: "int64" },
    phase: {
      type: "string",
      enum: ["Pending", "Deploying", "Running", "Suspended", "Failed", "Deleting"],
      description:
        "Pending: no process runs yet (being created, scheduled or pulled). Deploying: a roll is under way, or processes run but not all are ready. Running: every process is ready. Failed: the spec cannot be carried out, or a process failed twice in a row the same way (see the Degraded condition).",
    },
    processes: { type: "integer", format: "int32", description: "Processes (pods) that exist now." },
    readyProcesses: { type: "integer", format: "int32" },
    ready: { type: "string", description: "readyProcesses/desired processes, for printing." },
    selector: { type: "string", description: "Label selector of the pods, for the scale subresource." },
    image: { type: "string", description: "Image the running processes were started from." },
    conditions: {
      type: "array",
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
        kind: { type: "string", enum: ["scale", "upgrade"] },
        stage: {
          type: "string",
          enum: ["Stopping", "HandingOff", "Starting"],
          description:
            "Stopping: every old process stops. HandingOff (a scale-down with recovery): the new processes run beside holders, the pods beyond them, which hand their volumes' recovery data over. Starting: the new processes alone.",
        },
        generation: { type: "integer", format: "int64" },
        startedAt: { type: "string", format: "date-time" },
        from: {
          type: "integer",
          format: "int32",
          description: "Processes of the cluster being replaced: their volumes hold its recovery data.",
        },
        to: { type: "integer", format: "int32", description: "Processes of the cluster being started." },
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
        required: ["pod", "run", "exitCode", "times"],
        properties: {
          pod: { type: "string" },
          podUID: { type: "string", description: "Tells a pod from its replacement of the same name." },
          run: { type: "string", description: "The failed run's container ID." },
          exitCode: { type: "integer", format: "int32" },
          line: { type: "string", description: "The last line of the run's termination message: the runtime's error." },
          times: { type: "integer", format: "int32", description: "Runs in a row that failed this way." },
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
  required: ["spec"],
  properties: {
    apiVersion: { type: "string" },
    kind: { type: "string" },
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

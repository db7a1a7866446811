// Generated from src/schema.ts by `npm run gen -w crds`. Do not edit.
import type { V1EnvFromSource, V1EnvVar, V1ObjectMeta, V1PodTemplateSpec, V1ResourceRequirements } from "@kubernetes/client-node";


/**
 * A stream-processing dataflow (waxflow, Bytewax's model) run as a cluster of processes that the waxflow operator manages.
 */
export interface Dataflow {
/**
 * waxflow.io/v1alpha1.
 */
apiVersion?: string
/**
 * Dataflow.
 */
kind?: string
metadata?: V1ObjectMeta
spec: DataflowSpec
status?: DataflowStatus
}
/**
 * The dataflow to run: its image and entry module, how many processes and workers, recovery.
 */
export interface DataflowSpec {
/**
 * Dataflow image referenced by digest (built on waxflow-runtime), e.g. registry/app@sha256:<64 hex>.
 */
image: string
/**
 * Entry module passed to `waxflow run`, optionally `path:name` for a named export or factory.
 */
module: string
/**
 * Processes (pods) in the worker cluster. A change restarts every process together.
 */
processes?: number
/**
 * Workers in each process.
 */
workersPerProcess?: number
/**
 * suspended stops every process and keeps the recovery volumes; running resumes from them.
 */
state?: ("running" | "suspended")
/**
 * Change to any other value to restart every process (recovery state is kept).
 */
restartNonce?: number
/**
 * Where the new processes of a roll that replaces them (an upgrade or a scale) take their state from. stateless: empty state (WAXFLOW_START_FROM=fresh:<generation>). last-state: their recovery volumes, or the newest backup set for an empty one. savepoint: the operator first takes a savepoint of the running processes (through process 0's API; needs recovery.backup) and starts the new ones from it (WAXFLOW_START_FROM=savepoint:<id>); a failed savepoint holds the roll and the running processes run on untouched; with no ready process 0 there is nothing to save and the roll goes on as last-state. Changing it restarts nothing.
 */
upgradeMode?: ("stateless" | "last-state" | "savepoint")
rollback?: DataflowRollback
recovery?: DataflowRecovery
restoreFrom?: DataflowRestoreFrom
/**
 * Extra environment variables for every process (core/v1 EnvVar).
 */
env?: V1EnvVar[]
/**
 * core/v1 EnvFromSource entries for every process.
 */
envFrom?: V1EnvFromSource[]
/**
 * core/v1 ResourceRequirements of the dataflow container.
 */
resources?: V1ResourceRequirements
/**
 * Service account the processes run as; the namespace's default when unset.
 */
serviceAccountName?: string
/**
 * Serve per-key state queries (GET /state/STEP?key=K on port 3030, `waxctl df state`): off by default, since state is user data. Requests must carry a token derived from the Dataflow's cluster Secret, so only users who may read that Secret can query; the NetworkPolicy admits port 3030 only from the operator's namespace (and the API clients the chart names).
 */
stateQuery?: boolean
/**
 * Lets podTemplate ask for what a Dataflow's pods are otherwise refused: privileged containers, host namespaces, hostPath volumes, added capabilities, privilege escalation. The operator must allow it too (chart value allowPrivilegedDataflows, waxctl install --allow-privileged-dataflows); otherwise the Dataflow fails, naming the fields.
 */
allowPrivileged?: boolean
/**
 * core/v1 PodTemplateSpec merged over the generated one: labels and annotations are added, pod spec fields set, the container named `waxflow` merged, other containers and volumes appended.
 */
podTemplate?: V1PodTemplateSpec
}
/**
 * What happens when a roll's new processes are not all Ready within readyTimeout after the roll started (the operator records the last spec that became Ready in status.lastStableSpec). Changing it restarts nothing.
 */
export interface DataflowRollback {
/**
 * Roll back to status.lastStableSpec (with savepoint mode, from the savepoint taken before the upgrade): Ready and Degraded say RolledBack and why; spec stays as written, and the next edit of it starts a new roll. false: Progressing turns False with reason UpgradeStuck and the roll's pods stay as they are.
 */
enabled?: boolean
/**
 * How long a roll's new processes have to become Ready, from the roll's start, as a duration such as 5m.
 */
readyTimeout?: string
}
/**
 * Snapshots of state to a volume per process, so a restarted, rescaled or upgraded dataflow resumes where it stopped.
 */
export interface DataflowRecovery {
/**
 * Give every process a recovery volume (claim `recovery`, mounted at /var/lib/waxflow/recovery) and snapshot to it.
 */
enabled?: boolean
/**
 * Time between epochs (and snapshots), as a duration such as 10s.
 */
snapshotInterval?: string
/**
 * How long old snapshots are kept before garbage collection; at least snapshotInterval.
 */
backupInterval?: string
storage?: DataflowRecoveryStorage
backup?: DataflowBackup
/**
 * Drop recovered state of steps the dataflow no longer has (renamed or removed) instead of refusing to start (WAXFLOW_DROP_REMOVED_STEPS). Set it for the one deploy that renames a step, then unset it.
 */
dropRemovedSteps?: boolean
retention?: DataflowVolumeRetention
}
/**
 * The recovery volume of each process; fixed while recovery is enabled.
 */
export interface DataflowRecoveryStorage {
/**
 * Size of each process's recovery volume, as a quantity such as 1Gi.
 */
size?: string
/**
 * Storage class; the cluster default when unset.
 */
storageClassName?: string
}
/**
 * Upload a copy of every process's recovery store to an S3-compatible bucket every backupInterval, and restore from the newest complete set when a process's volume is empty (a lost volume, a new cluster).
 */
export interface DataflowBackup {
/**
 * The bucket (WAXFLOW_BACKUP_BUCKET).
 */
bucket: string
/**
 * An S3-compatible endpoint URL such as http://seaweedfs.storage:8333; unset: AWS S3 of the region (WAXFLOW_BACKUP_ENDPOINT).
 */
endpoint?: string
/**
 * Key prefix for this dataflow's sets inside the bucket, such as prod/wordcount; give each dataflow its own (WAXFLOW_BACKUP_PREFIX).
 */
prefix?: string
/**
 * The bucket's region; default us-east-1 (WAXFLOW_BACKUP_REGION).
 */
region?: string
/**
 * Newest complete backup sets kept (WAXFLOW_BACKUP_KEEP).
 */
keep?: number
/**
 * Complete sets younger than this are kept whatever their number, as a duration such as 24h (WAXFLOW_BACKUP_KEEP_AGE).
 */
keepAge?: string
credentialsSecret?: DataflowBackupCredentials
}
/**
 * A Secret in the Dataflow's namespace holding the access key: passed to every process as AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY. Unset: the pods' own AWS credentials (e.g. IRSA).
 */
export interface DataflowBackupCredentials {
/**
 * The Secret's name.
 */
name: string
/**
 * The Secret's key holding the access key id.
 */
accessKeyIdKey?: string
/**
 * The Secret's key holding the secret access key.
 */
secretAccessKeyKey?: string
}
/**
 * What happens to recovery volumes when the Dataflow is deleted or scaled down.
 */
export interface DataflowVolumeRetention {
/**
 * Retain keeps the volumes after the Dataflow is deleted (a Dataflow of the same name resumes from them); Delete deletes them with it.
 */
whenDeleted?: ("Retain" | "Delete")
/**
 * Retain keeps the volumes of processes removed by a scale-down (their state is handed over first); Delete deletes them.
 */
whenScaled?: ("Retain" | "Delete")
}
/**
 * Start from this savepoint (`waxctl df deploy --from-savepoint`, `waxctl df fork`): each process applies it once (WAXFLOW_START_FROM=savepoint:<id>), then keeps its volume's newer state. Needs recovery.backup: the savepoint is read from the bucket.
 */
export interface DataflowRestoreFrom {
/**
 * The savepoint's id, as `waxctl df savepoint list` shows it.
 */
savepoint: string
/**
 * The backup prefix the savepoint lives under, such as another Dataflow's for a fork (WAXFLOW_SAVEPOINT_PREFIX); unset: recovery.backup.prefix.
 */
prefix?: string
}
/**
 * What the controller observed and did, written by the controller only.
 */
export interface DataflowStatus {
/**
 * metadata.generation of the spec the controller last acted on.
 */
observedGeneration?: number
/**
 * When the controller last wrote this status. A running controller refreshes it every minute, so an older time means no controller is reconciling (kubectl get df: Reconciled).
 */
lastReconcileTime?: string
/**
 * Pending: no process runs yet (being created, scheduled or pulled). Deploying: a roll is under way, or processes run but not all are ready. Running: every process is ready. Failed: the spec cannot be carried out, or a process failed twice in a row the same way (see the Degraded condition).
 */
phase?: ("Pending" | "Deploying" | "Running" | "Suspended" | "Failed" | "Deleting")
/**
 * Processes (pods) that exist now.
 */
processes?: number
/**
 * Processes whose pods are ready.
 */
readyProcesses?: number
/**
 * readyProcesses/desired processes, for printing.
 */
ready?: string
/**
 * Label selector of the pods, for the scale subresource.
 */
selector?: string
/**
 * Image the running processes were started from.
 */
image?: string
/**
 * Ready, Progressing and Degraded, each with a reason and a message.
 */
conditions?: DataflowCondition[]
rollout?: DataflowRollout
/**
 * Each process that failed since it was last ready: its last failed run and how many runs in a row failed the same way (exit code and last line). Two make a crash loop: phase Failed.
 */
failures?: DataflowProcessFailure[]
/**
 * UIDs of the current pods the operator has asked (through /status) what they restored their recovery store from, told in Restored and RestoreFellBack events: each pod is asked once.
 * 
 * @maxItems 2000
 * 
 * Items: A pod's metadata.uid.
 */
restoresReported?: string[]
/**
 * JSON of the last spec whose processes all became Ready: what spec.rollback rolls back to.
 */
lastStableSpec?: string
/**
 * metadata.generation of lastStableSpec.
 */
lastStableGeneration?: number
lastSavepoint?: DataflowSavepointRef
/**
 * WAXFLOW_START_FROM of the running pod template (fresh:<generation>, savepoint:<id>), set by the roll that chose it; a process applies each value once.
 */
startFrom?: string
lastRoll?: DataflowLastRoll
rolledBack?: DataflowRolledBack
/**
 * JSON of the spec the processes were last started with: the base of the next spec diff and the layout of the recovery data.
 */
lastReconciledSpec?: string
}
/**
 * One aspect of the Dataflow's state, as Kubernetes conditions are read by `kubectl wait --for=condition=Ready`.
 */
export interface DataflowCondition {
/**
 * Ready: every process runs and the worker cluster has formed. Progressing: a deploy, scale or upgrade is under way. Degraded: something needs attention (the message says what).
 */
type: ("Ready" | "Progressing" | "Degraded")
/**
 * Whether the condition holds.
 */
status: ("True" | "False" | "Unknown")
/**
 * CamelCase cause, stable for automation.
 */
reason?: string
/**
 * What is happening and, when something is wrong, what to do.
 */
message?: string
/**
 * When status last changed.
 */
lastTransitionTime?: string
/**
 * metadata.generation of the spec this condition was computed from.
 */
observedGeneration?: number
}
/**
 * Write-ahead record of a roll in flight, written before each step so a restarted controller resumes it.
 */
export interface DataflowRollout {
/**
 * scale: only the process count changes. upgrade: anything else that restarts the processes.
 */
kind: ("scale" | "upgrade")
/**
 * Savepointing (upgradeMode savepoint): a savepoint of the running processes is taken; nothing is stopped yet. Stopping: every old process stops. HandingOff (a scale-down with recovery): the new processes run beside holders, the pods beyond them, which hand their volumes' recovery data over. Starting: the new processes alone.
 */
stage: ("Savepointing" | "Stopping" | "HandingOff" | "Starting")
/**
 * metadata.generation the roll carries out.
 */
generation: number
/**
 * When the roll started.
 */
startedAt?: string
/**
 * Processes of the cluster being replaced: their volumes hold its recovery data.
 */
from: number
/**
 * Processes of the cluster being started.
 */
to: number
savepoint?: DataflowRolloutSavepoint
/**
 * WAXFLOW_START_FROM of the processes this roll starts; status.startFrom once it is complete.
 */
startFrom?: string
}
/**
 * The savepoint the roll takes before stopping anything (stage Savepointing).
 */
export interface DataflowRolloutSavepoint {
/**
 * The savepoint's id, chosen before it is requested.
 */
id: string
/**
 * Why it failed: the roll is held until the spec changes.
 */
error?: string
}
/**
 * One process's failed runs.
 */
export interface DataflowProcessFailure {
/**
 * The process's pod.
 */
pod: string
/**
 * Tells a pod from its replacement of the same name.
 */
podUID?: string
/**
 * The failed run's container ID.
 */
run: string
/**
 * The failed run's exit code.
 */
exitCode: number
/**
 * The last line of the run's termination message: the runtime's error.
 */
line?: string
/**
 * Runs in a row that failed this way.
 */
times: number
}
/**
 * The last savepoint the operator took (upgradeMode savepoint, before stopping the processes of a roll).
 */
export interface DataflowSavepointRef {
/**
 * The savepoint's id (waxctl df savepoint list).
 */
id: string
/**
 * The epoch the savepoint holds the state of.
 */
epoch?: number
/**
 * When the savepoint was complete.
 */
createdAt?: string
}
/**
 * The newest generation a roll started for, and when: spec.rollback.readyTimeout counts from it.
 */
export interface DataflowLastRoll {
/**
 * metadata.generation the roll carries out.
 */
generation: number
/**
 * When the roll started.
 */
startedAt: string
/**
 * The savepoint taken before it (upgradeMode savepoint).
 */
savepoint?: string
}
/**
 * A rollback in effect: while metadata.generation is this generation the processes run lastStableSpec; any edit of the spec ends it.
 */
export interface DataflowRolledBack {
/**
 * The generation that was rolled back.
 */
generation: number
/**
 * The generation of the spec rolled back to.
 */
toGeneration: number
/**
 * When the rollback started.
 */
at: string
/**
 * Why: what the rolled back generation's processes were doing.
 */
message: string
/**
 * WAXFLOW_START_FROM of the rollback (the savepoint taken before the upgrade).
 */
startFrom?: string
}

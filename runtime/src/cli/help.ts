/** What `waxflow --help` prints: enough to run a dataflow without reading the docs. */
export const HELP = `Usage: waxflow run <module>[:name] [options]
       waxflow graph <module>[:name] [--format mermaid|dot]
       waxflow recovery init <dir> <partition count>

Runs a dataflow until every input reaches its end; with -r it snapshots its state every
-s seconds and resumes from the last snapshot when started again. Each process keeps its
own recovery store (-r); on a restart the processes hand snapshots to each other, so the
cluster may come back with more or fewer processes or workers.

<module> is a .ts or .js file, relative to the working directory. It must export the
Dataflow as \`flow\` or as its default export; \`<module>:name\` picks another export,
either a Dataflow or a function returning one (it is called with no arguments).

Options (a flag wins over its environment variable):
  -w, --workers-per-process N   WAXFLOW_WORKERS_PER_PROCESS   workers in this process, one thread each (default 1)
  -i, --process-id I            WAXFLOW_PROCESS_ID            this process's index (default 0;
                                  else the ordinal of WAXFLOW_POD_NAME "<WAXFLOW_STATEFULSET_NAME>-<i>")
  -a, --addresses "h:p;h:p"     WAXFLOW_ADDRESSES             every process's host:port, in process order;
                                  else one per line in the file WAXFLOW_HOSTFILE_PATH; else
                                  <sts>-<i>.<svc>.<ns>.svc:2101 for i < WAXFLOW_REPLICAS, from
                                  WAXFLOW_STATEFULSET_NAME, WAXFLOW_SERVICE_NAME, WAXFLOW_NAMESPACE
  -r, --recovery-directory DIR  WAXFLOW_RECOVERY_DIRECTORY    this process's recovery store, made by
                                                              \`waxflow recovery init\` (default: no recovery)
      --recovery-init           WAXFLOW_RECOVERY_INIT=true    create the store if DIR holds none (a new, empty volume)
      --drop-removed-steps      WAXFLOW_DROP_REMOVED_STEPS=true
                                  drop the recovered state of steps the dataflow no longer has (renamed or
                                  removed); without it such a store is refused, listing those steps
  -s, --snapshot-interval SECS  WAXFLOW_SNAPSHOT_INTERVAL     seconds between epochs and snapshots (default 10)
  -b, --backup-interval SECS    WAXFLOW_BACKUP_INTERVAL       seconds snapshots are kept before they are removed;
                                  with --backup-bucket also how often a copy is uploaded (default there 60)
      --backup-bucket NAME      WAXFLOW_BACKUP_BUCKET         upload a copy of the recovery store to this S3 bucket every
                                  backup interval, and restore from its newest complete set when DIR holds no store.
                                  Credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or the AWS credentials file
      --backup-endpoint URL     WAXFLOW_BACKUP_ENDPOINT       an S3-compatible endpoint (default: AWS S3 of the region)
      --backup-prefix P         WAXFLOW_BACKUP_PREFIX         key prefix inside the bucket (default: none)
      --backup-region R         WAXFLOW_BACKUP_REGION         the bucket's region (default us-east-1)
      --backup-keep N           WAXFLOW_BACKUP_KEEP           newest complete backup sets kept (default 3)
      --backup-keep-age SECS    WAXFLOW_BACKUP_KEEP_AGE       complete sets younger than this are kept too (default 0)
      --start-from V            WAXFLOW_START_FROM            fresh:<token>: start with an empty store; savepoint:<id>: start
                                  from that savepoint in the bucket. Once per value: DIR keeps the last one applied in its
                                  \`start-from\` file, so a restart afterwards keeps its newer state (default: DIR, or the
                                  newest backup set when DIR is empty). A missing or damaged savepoint fails the start.
                                  savepoint:<id>@<token> applies the savepoint again under a new token (a rollback)
      --savepoint-prefix P      WAXFLOW_SAVEPOINT_PREFIX      the backup prefix the savepoint lives under (a fork reads its
                                  source's; default: --backup-prefix)
      --start-timeout SECS      WAXFLOW_START_TIMEOUT         seconds to wait for peers and for holders (default 60)
      --progress-interval SECS  WAXFLOW_PROGRESS_INTERVAL     seconds between progress lines on stderr (items in and
                                                              out, epoch; default 30; 0: none)
  -q, --quiet                   WAXFLOW_QUIET=true            no start, cluster, resume, progress or end lines on
                                                              stderr, only failures (as Bytewax)
      --holder                                                only hand this store over to the cluster of -a: for a
                                  process no longer in it (-i >= the number of addresses); ready once handed over,
                                  exits 0 when stopped. On Kubernetes a pod whose ordinal is >= WAXFLOW_REPLICAS
                                  is a holder without the flag
      --no-supervise            WAXFLOW_SUPERVISE=false       exit when a peer is lost (fate-sharing), as for local
                                  debugging; by default the process stays up, re-forms the cluster and resumes from
                                  the last snapshot, waiting 0.5 s doubling to 5 s between attempts (a lone
                                  process, having no peer to lose, is never supervised)
      --cluster-secret S        WAXFLOW_CLUSTER_SECRET        secret every process of the cluster shares (16+ bytes,
                                  e.g. \`openssl rand -hex 32\`); required with more than one process or a holder.
                                  Prefer the variable or the file: a flag shows in the process list
      --cluster-secret-file F   WAXFLOW_CLUSTER_SECRET_FILE   the secret is this file's bytes (a mounted Kubernetes Secret)
      --insecure-cluster        WAXFLOW_INSECURE_CLUSTER=true a cluster without a secret: a trusted network only
      --cluster-tls             WAXFLOW_CLUSTER_TLS=true      encrypt traffic between processes too (TLS-PSK from the secret)
      --listen HOST             WAXFLOW_LISTEN                address the cluster port binds (default: this process's host in -a)
      --peer-timeout SECS       WAXFLOW_PEER_TIMEOUT          a peer silent this long is lost, the cluster stops (default 15;
                                  a crashed peer is noticed at once by its closed connection)
      --state-query             WAXFLOW_STATE_QUERY=true      answer GET /state/STEP?key=K on the API port (off by default:
                                  state is user data); requests carry the token derived from the cluster secret
                                  in the x-waxflow-state-token header (README "State queries")
      --debug                   WAXFLOW_DEBUG=1               print full stack traces on failure
  -h, --help                                                  show this help
                                WAXFLOW_API_PORT              HTTP API: /livez /readyz /metrics /status /steps
                                                              (default 3030; 0 picks a free port); process 0 with a bucket
                                                              also serves POST/GET/DELETE /savepoints (state token header)
                                WAXFLOW_STEP_METRICS=false    do not count items into steps or follow watermarks
                                                              (only to measure what that costs)
                                KAFKA_SASL_*, KAFKA_TLS_*     credentials and TLS of Kafka sources and sinks, where
                                                              the dataflow's options leave them unset (README "Kafka")
                                NODE_DISABLE_COMPILE_CACHE=1  do not keep compiled code in $TMPDIR/waxflow-compile-cache-UID
                                                              (a 0700 directory; starts and worker threads are faster with it)

\`waxflow graph\` prints the dataflow's steps and the streams between them, without running it:
a Mermaid flowchart (default; paste it into a \`\`\`mermaid block of a Markdown file) or, with
-f/--format dot, Graphviz DOT (\`waxflow graph flow.ts -f dot | dot -Tsvg > flow.svg\`). Each step
shows the operator that made it and whether it holds state; steps made of other steps are
subgraphs around them.

A restart with fewer processes needs the stores of the processes left out: start them as
holders, or the start fails naming them (MissingProcessStoreError).

stderr has one line each when the process starts, when the cluster forms, when it resumes
(the epoch and the snapshots handed between processes), every --progress-interval, and when
it finishes or fails (-q: only failures); stdout is the dataflow's own (StdOutSink).

Exit status: 0 when every input reached its end; 1 when the dataflow or its module failed
(one line on stderr naming the step), or with --no-supervise when a peer was lost; 2 for bad flags or environment; 130/143 on SIGINT/SIGTERM.

Examples:
  waxflow run examples/wordcount.ts -w 2
  waxflow recovery init /tmp/recovery 4 && waxflow run flow.ts -r /tmp/recovery -s 1
  export WAXFLOW_CLUSTER_SECRET=$(openssl rand -hex 32)        (the same value on every host)
  waxflow run flow.ts -i 0 -a "10.0.0.1:2101;10.0.0.2:2101"   (and -i 1 on the second host)
  waxflow run flow.ts -i 2 -a "10.0.0.1:2101;10.0.0.2:2101" --holder -r /var/lib/waxflow/recovery
  WAXFLOW_WORKERS_PER_PROCESS=2 waxflow run ./dataflow.ts:makeFlow
  waxflow graph examples/wordcount.ts > wordcount.mmd
`;

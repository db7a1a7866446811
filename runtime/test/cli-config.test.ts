import { describe, expect, test } from "vitest";
import { UsageError } from "waxflow";
import { type Env, type RunConfig, resolveCommand, unsupported } from "../src/cli/config.ts";
import { TEST_SECRET, TEST_SECRET_BYTES } from "./support/secret.ts";

const noHostfile = {
  readHostfile: (path: string): string => {
    throw new Error(`ENOENT: no such file, open '${path}'`);
  },
};

/** A cluster secret is set unless `env` says otherwise: clusters refuse to start without one. */
function config(argv: string[], env: Env = {}, io = noHostfile): RunConfig {
  const command = resolveCommand(["run", ...argv], { WAXFLOW_CLUSTER_SECRET: TEST_SECRET, ...env }, io);
  if (command.kind !== "run") throw new Error("expected a run command");
  return command.config;
}

function usageError(argv: string[], env: Env = {}, io = noHostfile): string {
  try {
    resolveCommand(argv, env, io);
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    return (err as UsageError).message;
  }
  throw new Error("expected a UsageError");
}

describe("defaults", () => {
  test("a module alone runs one worker of one process, no recovery, 10 s epochs", () => {
    expect(config(["flow.ts"])).toEqual({
      modulePath: "flow.ts",
      exportName: undefined,
      workersPerProcess: 1,
      processId: 0,
      addresses: [],
      recoveryDirectory: undefined,
      recoveryInit: false,
      dropRemovedSteps: false,
      holder: false,
      startTimeoutMs: 60_000,
      epochIntervalMs: 10_000,
      backupIntervalMs: undefined,
      apiPort: 3030,
      progressIntervalMs: 30_000,
      quiet: false,
      debug: false,
      supervise: false,
      mesh: { secret: TEST_SECRET_BYTES, tls: false, listenHost: undefined, peerTimeoutMs: 15_000 },
      stateQuery: false,
    });
  });

  test("help wins over everything", () => {
    expect(resolveCommand(["run", "x.ts", "-w", "0", "--help"], {}, noHostfile)).toEqual({ kind: "help" });
    expect(resolveCommand(["-h"], {}, noHostfile)).toEqual({ kind: "help" });
  });
});

describe("state queries", () => {
  test("off by default; --state-query or WAXFLOW_STATE_QUERY=true turns them on", () => {
    expect(config(["flow.ts"]).stateQuery).toBe(false);
    expect(config(["flow.ts", "--state-query"]).stateQuery).toBe(true);
    expect(config(["flow.ts"], { WAXFLOW_STATE_QUERY: "true" }).stateQuery).toBe(true);
    expect(config(["flow.ts"], { WAXFLOW_STATE_QUERY: "false" }).stateQuery).toBe(false);
  });

  test("need a cluster secret, which the token derives from; a bad switch value is named", () => {
    expect(usageError(["run", "flow.ts", "--state-query"])).toMatch(
      /^--state-query \(WAXFLOW_STATE_QUERY\) needs a cluster secret, which its token is derived from/,
    );
    expect(usageError(["run", "flow.ts"], { WAXFLOW_STATE_QUERY: "true", WAXFLOW_INSECURE_CLUSTER: "true" })).toMatch(
      /needs a cluster secret/,
    );
    expect(usageError(["run", "flow.ts"], { WAXFLOW_STATE_QUERY: "yes" })).toBe(
      'WAXFLOW_STATE_QUERY must be true or false, got "yes"',
    );
  });
});

describe("module target", () => {
  test("module:name picks an export; a path keeps its other colons", () => {
    expect(config(["dir/flow.ts:makeFlow"])).toMatchObject({ modulePath: "dir/flow.ts", exportName: "makeFlow" });
    expect(config(["C:/x/flow.ts"])).toMatchObject({ modulePath: "C:/x/flow.ts", exportName: undefined });
  });

  test("an empty export name is an error", () => {
    expect(usageError(["run", "flow.ts:"])).toMatch(/missing export name/);
  });

  test("missing command, unknown command, missing module, extra argument", () => {
    expect(usageError([])).toMatch(/missing command/);
    expect(usageError(["go", "x.ts"])).toMatch(/unknown command "go"/);
    expect(usageError(["run"])).toMatch(/missing dataflow module/);
    expect(usageError(["run", "a.ts", "b.ts"])).toMatch(/unexpected argument "b.ts"/);
  });
});

describe("workers", () => {
  test("flag, long flag, variable; the flag wins", () => {
    expect(config(["f.ts", "-w", "3"]).workersPerProcess).toBe(3);
    expect(config(["f.ts", "--workers-per-process=4"]).workersPerProcess).toBe(4);
    expect(config(["f.ts"], { WAXFLOW_WORKERS_PER_PROCESS: "5" }).workersPerProcess).toBe(5);
    expect(config(["f.ts", "-w", "2"], { WAXFLOW_WORKERS_PER_PROCESS: "5" }).workersPerProcess).toBe(2);
  });

  test("an empty variable counts as unset", () => {
    expect(config(["f.ts"], { WAXFLOW_WORKERS_PER_PROCESS: "" }).workersPerProcess).toBe(1);
  });

  test.each([
    ["0", /-w\/--workers-per-process must be a whole number >= 1, got "0"/],
    ["abc", /-w\/--workers-per-process must be a whole number >= 1, got "abc"/],
    ["1.5", /got "1.5"/],
  ])("-w %s is refused", (value, message) => {
    expect(usageError(["run", "f.ts", "-w", value])).toMatch(message);
  });

  test("a bad variable is named", () => {
    expect(usageError(["run", "f.ts"], { WAXFLOW_WORKERS_PER_PROCESS: "many" })).toMatch(
      /^WAXFLOW_WORKERS_PER_PROCESS must be a whole number >= 1, got "many"$/,
    );
  });

  test("a flag without its value and an unknown flag", () => {
    expect(usageError(["run", "f.ts", "-w"])).toBe(
      "-w/--workers-per-process needs a value: a whole number >= 1, e.g. -w 2",
    );
    expect(usageError(["run", "f.ts", "-x"])).toBe("unknown flag -x; see `waxflow --help`");
    expect(usageError(["run", "f.ts", "--holder=yes"])).toBe(
      '--holder takes no value, got "yes"; write --holder alone',
    );
    // A value that starts with '-' is the flag's value, judged by the flag's own rule.
    expect(usageError(["run", "f.ts", "-s", "-1"])).toBe(
      '-s/--snapshot-interval must be a number of seconds > 0, got "-1"',
    );
  });
});

describe("process id and addresses", () => {
  test("-a lists the processes in order; -i picks this one", () => {
    const c = config(["f.ts", "-a", "a:2101; b:2101 ;", "-i", "1"]);
    expect(c.addresses).toEqual(["a:2101", "b:2101"]);
    expect(c.processId).toBe(1);
  });

  test("a process id beyond the addresses is refused", () => {
    expect(usageError(["run", "f.ts", "-a", "a:1;b:2", "-i", "2"])).toMatch(
      /-i\/--process-id is 2 but there are only 2 addresses \(add --holder if this process only hands its recovery store over/,
    );
    expect(usageError(["run", "f.ts", "-i", "1"])).toMatch(/-i\/--process-id is 1 but no addresses are given/);
  });

  test("addresses must be host:port", () => {
    expect(usageError(["run", "f.ts", "-a", "a:1;nohost"])).toMatch(/-a\/--addresses: "nohost" is not host:port/);
    expect(usageError(["run", "f.ts"], { WAXFLOW_ADDRESSES: "a:99999" })).toMatch(
      /WAXFLOW_ADDRESSES: "a:99999" is not host:port/,
    );
    expect(usageError(["run", "f.ts", "-a", ";"])).toMatch(/holds no addresses/);
  });

  test("process id from the pod name minus the StatefulSet name", () => {
    const env = {
      WAXFLOW_POD_NAME: "my-flow-2",
      WAXFLOW_STATEFULSET_NAME: "my-flow",
      WAXFLOW_ADDRESSES: "a:1;b:1;c:1",
    };
    expect(config(["f.ts"], env).processId).toBe(2);
    expect(config(["f.ts"], { ...env, WAXFLOW_PROCESS_ID: "1" }).processId).toBe(1);
    expect(usageError(["run", "f.ts"], { ...env, WAXFLOW_POD_NAME: "other-2" })).toMatch(
      /WAXFLOW_POD_NAME "other-2" is not "my-flow-<number>"/,
    );
    expect(usageError(["run", "f.ts"], { WAXFLOW_POD_NAME: "my-flow-0" })).toMatch(/WAXFLOW_STATEFULSET_NAME is not/);
  });

  test("addresses from a hostfile, one per line", () => {
    const io = { readHostfile: (path: string) => (path === "/etc/hosts.txt" ? "a:2101\n\n b:2101 \n" : "") };
    expect(config(["f.ts"], { WAXFLOW_HOSTFILE_PATH: "/etc/hosts.txt" }, io).addresses).toEqual(["a:2101", "b:2101"]);
    expect(usageError(["run", "f.ts"], { WAXFLOW_HOSTFILE_PATH: "/nope" })).toMatch(
      /^WAXFLOW_HOSTFILE_PATH: cannot read "\/nope": ENOENT/,
    );
  });

  test("WAXFLOW_ADDRESSES wins over the hostfile", () => {
    const io = { readHostfile: () => "h:1\nh:2\n" };
    expect(config(["f.ts"], { WAXFLOW_ADDRESSES: "x:1", WAXFLOW_HOSTFILE_PATH: "/h" }, io).addresses).toEqual(["x:1"]);
  });

  test("addresses derived from the StatefulSet and its headless Service", () => {
    const env = {
      WAXFLOW_STATEFULSET_NAME: "wc",
      WAXFLOW_REPLICAS: "3",
      WAXFLOW_SERVICE_NAME: "wc",
      WAXFLOW_NAMESPACE: "team",
      WAXFLOW_POD_NAME: "wc-1",
    };
    const c = config(["f.ts"], env);
    expect(c.addresses).toEqual(["wc-0.wc.team.svc:2101", "wc-1.wc.team.svc:2101", "wc-2.wc.team.svc:2101"]);
    expect(c.processId).toBe(1);
    expect(usageError(["run", "f.ts"], { WAXFLOW_REPLICAS: "2", WAXFLOW_STATEFULSET_NAME: "wc" })).toMatch(
      /WAXFLOW_SERVICE_NAME, WAXFLOW_NAMESPACE is not set/,
    );
  });
});

describe("holders", () => {
  test("--holder with an index beyond the addresses and a store", () => {
    const c = config(["f.ts", "-a", "a:1;b:1", "-i", "2", "--holder", "-r", "/r"]);
    expect(c).toMatchObject({ holder: true, processId: 2, addresses: ["a:1", "b:1"] });
  });

  test("a pod whose ordinal is beyond WAXFLOW_REPLICAS is a holder without the flag", () => {
    const env = {
      WAXFLOW_STATEFULSET_NAME: "wc",
      WAXFLOW_REPLICAS: "2",
      WAXFLOW_SERVICE_NAME: "wc",
      WAXFLOW_NAMESPACE: "team",
      WAXFLOW_POD_NAME: "wc-3",
      WAXFLOW_RECOVERY_DIRECTORY: "/var/lib/waxflow/recovery",
    };
    expect(config(["f.ts"], env)).toMatchObject({
      holder: true,
      processId: 3,
      addresses: ["wc-0.wc.team.svc:2101", "wc-1.wc.team.svc:2101"],
    });
    expect(usageError(["run", "f.ts"], { ...env, WAXFLOW_RECOVERY_DIRECTORY: "" })).toMatch(
      /process 3 is beyond the cluster's 2 processes, so it holds its recovery store for them, but no store is given/,
    );
  });

  test("--holder inside the cluster, or without addresses, is refused", () => {
    expect(usageError(["run", "f.ts", "-a", "a:1;b:1", "-i", "1", "--holder", "-r", "/r"])).toMatch(
      /--holder needs a process id beyond the cluster's 2 process\(es\), but -i\/--process-id is 1/,
    );
    expect(usageError(["run", "f.ts", "-i", "1", "--holder", "-r", "/r"])).toMatch(
      /a holder needs the cluster's addresses/,
    );
  });
});

describe("recovery, intervals, port, debug", () => {
  test("-s sets the epoch interval in seconds, fractions allowed", () => {
    expect(config(["f.ts", "-s", "0.5"]).epochIntervalMs).toBe(500);
    expect(config(["f.ts"], { WAXFLOW_SNAPSHOT_INTERVAL: "30" }).epochIntervalMs).toBe(30_000);
    expect(usageError(["run", "f.ts", "-s", "0"])).toMatch(/-s\/--snapshot-interval must be a number of seconds > 0/);
    expect(usageError(["run", "f.ts", "-s", "soon"])).toMatch(/got "soon"/);
  });

  test("-r and -b are read from flags or variables", () => {
    const c = config(["f.ts", "-r", "/var/lib/waxflow/recovery"], { WAXFLOW_BACKUP_INTERVAL: "0" });
    expect(c.recoveryDirectory).toBe("/var/lib/waxflow/recovery");
    expect(c.backupIntervalMs).toBe(0);
  });

  test("--backup-* flags or WAXFLOW_BACKUP_* variables configure backups to a bucket; the rest needs a bucket", () => {
    expect(config(["f.ts", "-r", "/r"]).backup).toBeUndefined();
    const c = config(["f.ts", "-r", "/r", "--backup-bucket", "b", "--backup-keep", "5"], {
      WAXFLOW_BACKUP_ENDPOINT: "http://127.0.0.1:8333",
      WAXFLOW_BACKUP_PREFIX: "prod/wc",
      WAXFLOW_BACKUP_KEEP_AGE: "3600",
    });
    expect(c.backup).toEqual({
      bucket: "b",
      endpoint: "http://127.0.0.1:8333",
      prefix: "prod/wc",
      region: undefined,
      keep: 5,
      keepAgeMs: 3_600_000,
    });
    expect(usageError(["run", "f.ts", "-r", "/r"], { WAXFLOW_BACKUP_PREFIX: "p" })).toBe(
      "WAXFLOW_BACKUP_PREFIX needs a bucket: add --backup-bucket (WAXFLOW_BACKUP_BUCKET)",
    );
    expect(usageError(["run", "f.ts", "--backup-bucket", "b", "--backup-endpoint", "s3:8333"])).toMatch(
      /^--backup-endpoint must be an http:\/\/ or https:\/\/ URL, got "s3:8333"$/,
    );
    expect(usageError(["run", "f.ts", "--backup-bucket", "b", "--backup-keep", "0"])).toMatch(/^--backup-keep must be/);
  });

  test("--recovery-init or WAXFLOW_RECOVERY_INIT creates a store in an empty directory", () => {
    expect(config(["f.ts", "-r", "/r", "--recovery-init"]).recoveryInit).toBe(true);
    expect(config(["f.ts", "-r", "/r"], { WAXFLOW_RECOVERY_INIT: "true" }).recoveryInit).toBe(true);
    expect(config(["f.ts", "-r", "/r"], { WAXFLOW_RECOVERY_INIT: "false" }).recoveryInit).toBe(false);
    expect(usageError(["run", "f.ts"], { WAXFLOW_RECOVERY_INIT: "yes" })).toMatch(
      /^WAXFLOW_RECOVERY_INIT must be true or false, got "yes"$/,
    );
  });

  test("--drop-removed-steps or WAXFLOW_DROP_REMOVED_STEPS drops the state of steps the dataflow no longer has", () => {
    expect(config(["f.ts", "-r", "/r"]).dropRemovedSteps).toBe(false);
    expect(config(["f.ts", "-r", "/r", "--drop-removed-steps"]).dropRemovedSteps).toBe(true);
    expect(config(["f.ts", "-r", "/r"], { WAXFLOW_DROP_REMOVED_STEPS: "true" }).dropRemovedSteps).toBe(true);
    expect(usageError(["run", "f.ts"], { WAXFLOW_DROP_REMOVED_STEPS: "please" })).toMatch(
      /^WAXFLOW_DROP_REMOVED_STEPS must be true or false, got "please"$/,
    );
    expect(unsupported(config(["f.ts", "--drop-removed-steps"]))).toBe(
      "--drop-removed-steps only applies with recovery: add -r/--recovery-directory",
    );
  });

  test("--start-timeout or WAXFLOW_START_TIMEOUT, in seconds", () => {
    expect(config(["f.ts", "--start-timeout", "5"]).startTimeoutMs).toBe(5000);
    expect(config(["f.ts"], { WAXFLOW_START_TIMEOUT: "0.5" }).startTimeoutMs).toBe(500);
    expect(usageError(["run", "f.ts", "--start-timeout", "0"])).toMatch(
      /^--start-timeout must be a number of seconds > 0/,
    );
  });

  test("a process with peers is supervised unless --no-supervise or WAXFLOW_SUPERVISE=false", () => {
    const peers = ["f.ts", "-a", "a:1;b:2"];
    expect(config(peers).supervise).toBe(true);
    expect(config([...peers, "--no-supervise"]).supervise).toBe(false);
    expect(config(peers, { WAXFLOW_SUPERVISE: "false" }).supervise).toBe(false);
    expect(config(peers, { WAXFLOW_SUPERVISE: "true" }).supervise).toBe(true);
    expect(config(peers, { WAXFLOW_SUPERVISE: "" }).supervise).toBe(true);
    expect(usageError(["run", ...peers], { WAXFLOW_SUPERVISE: "no" })).toBe(
      'WAXFLOW_SUPERVISE must be true or false, got "no"',
    );
  });

  test("a lone process has no peer to lose, so it runs without a supervisor", () => {
    expect(config(["f.ts"]).supervise).toBe(false);
    expect(config(["f.ts", "-a", "a:1"]).supervise).toBe(false);
    expect(config(["f.ts"], { WAXFLOW_SUPERVISE: "true" }).supervise).toBe(false);
    expect(usageError(["run", "f.ts"], { WAXFLOW_SUPERVISE: "no" })).toBe(
      'WAXFLOW_SUPERVISE must be true or false, got "no"',
    );
  });

  test("WAXFLOW_API_PORT", () => {
    expect(config(["f.ts"], { WAXFLOW_API_PORT: "8080" }).apiPort).toBe(8080);
    expect(usageError(["run", "f.ts"], { WAXFLOW_API_PORT: "70000" })).toMatch(
      /WAXFLOW_API_PORT must be a port number/,
    );
  });

  test("--progress-interval or WAXFLOW_PROGRESS_INTERVAL in seconds, 0 for none; -q or WAXFLOW_QUIET=true", () => {
    expect(config(["f.ts", "--progress-interval", "5"]).progressIntervalMs).toBe(5000);
    expect(config(["f.ts"], { WAXFLOW_PROGRESS_INTERVAL: "0" }).progressIntervalMs).toBe(0);
    expect(usageError(["run", "f.ts", "--progress-interval", "-1"])).toMatch(/--progress-interval/);
    expect(usageError(["run", "f.ts"], { WAXFLOW_PROGRESS_INTERVAL: "often" })).toBe(
      'WAXFLOW_PROGRESS_INTERVAL must be a number of seconds >= 0, got "often"',
    );
    expect(config(["f.ts", "-q"]).quiet).toBe(true);
    expect(config(["f.ts"], { WAXFLOW_QUIET: "true" }).quiet).toBe(true);
    expect(usageError(["run", "f.ts"], { WAXFLOW_QUIET: "yes" })).toBe(
      'WAXFLOW_QUIET must be true or false, got "yes"',
    );
  });

  test("--debug or WAXFLOW_DEBUG=1", () => {
    expect(config(["f.ts", "--debug"]).debug).toBe(true);
    expect(config(["f.ts"], { WAXFLOW_DEBUG: "1" }).debug).toBe(true);
    expect(config(["f.ts"], { WAXFLOW_DEBUG: "0" }).debug).toBe(false);
  });
});

describe("unsupported features are refused, not ignored", () => {
  test("one address is a single process and runs", () => {
    expect(unsupported(config(["f.ts", "-a", "localhost:2101"]))).toBeUndefined();
  });

  test("several processes, with or without recovery, run", () => {
    expect(unsupported(config(["f.ts", "-a", "a:1;b:1"]))).toBeUndefined();
    expect(unsupported(config(["f.ts", "-a", "a:1;b:1", "-r", "/tmp/r"]))).toBeUndefined();
    expect(unsupported(config(["f.ts", "-r", "/tmp/r", "-b", "60"]))).toBeUndefined();
  });

  test("a backup interval or --recovery-init without recovery", () => {
    expect(unsupported(config(["f.ts", "-b", "60"]))).toMatch(/only applies with recovery: add -r/);
    expect(unsupported(config(["f.ts", "--recovery-init"]))).toMatch(/^--recovery-init only applies with recovery/);
  });

  test("a bucket without recovery, or with a backup interval of 0", () => {
    expect(unsupported(config(["f.ts", "--backup-bucket", "b"]))).toBe(
      "--backup-bucket only applies with recovery: add -r/--recovery-directory",
    );
    expect(unsupported(config(["f.ts", "-r", "/r", "--backup-bucket", "b", "-b", "0"]))).toMatch(
      /^-b\/--backup-interval 0 with --backup-bucket/,
    );
    expect(unsupported(config(["f.ts", "-r", "/r", "--backup-bucket", "b"]))).toBeUndefined();
  });

  test("recovery init takes a directory and a count", () => {
    expect(resolveCommand(["recovery", "init", "/tmp/r", "4"], {}, noHostfile)).toEqual({
      kind: "recovery-init",
      directory: "/tmp/r",
      partitions: 4,
    });
    expect(() => resolveCommand(["recovery", "init", "/tmp/r", "0"], {}, noHostfile)).toThrow(/whole number >= 1/);
    expect(() => resolveCommand(["recovery", "init"], {}, noHostfile)).toThrow(/missing argument/);
  });
});

describe("the mesh: secret, TLS, listen address, peer timeout", () => {
  const secretFile = (path: string): Buffer => {
    if (path === "/run/secret") return Buffer.from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 255]);
    throw new Error(`ENOENT: no such file, open '${path}'`);
  };
  const io = { ...noHostfile, readSecretFile: secretFile };
  const cluster = ["f.ts", "-a", "a:1;b:1", "-i", "1"];

  test("a single process needs no secret; a cluster or a holder refuses to start without one", () => {
    expect(config(["f.ts"], { WAXFLOW_CLUSTER_SECRET: "" }).mesh.secret).toBeUndefined();
    const message = usageError(["run", ...cluster]);
    expect(message).toMatch(
      /needs a cluster secret: set the same random value .*WAXFLOW_CLUSTER_SECRET.*--insecure-cluster/,
    );
    expect(usageError(["run", "f.ts", "-a", "a:1", "-i", "1", "--holder", "-r", "/r"])).toMatch(
      /needs a cluster secret/,
    );
  });

  test("the secret comes from the flag, the variable or a file; the file's bytes are taken as they are", () => {
    expect(config(cluster, { WAXFLOW_CLUSTER_SECRET: "0123456789abcdef" }).mesh.secret).toEqual(
      Buffer.from("0123456789abcdef"),
    );
    expect(config([...cluster, "--cluster-secret", "fedcba9876543210"]).mesh.secret).toEqual(
      Buffer.from("fedcba9876543210"),
    );
    const fromFile = config(cluster, { WAXFLOW_CLUSTER_SECRET: "", WAXFLOW_CLUSTER_SECRET_FILE: "/run/secret" }, io);
    expect(fromFile.mesh.secret).toEqual(secretFile("/run/secret"));
  });

  test("a short, doubled, unreadable or contradicted secret is refused, naming its source", () => {
    expect(usageError(["run", ...cluster], { WAXFLOW_CLUSTER_SECRET: "short" })).toMatch(
      /^WAXFLOW_CLUSTER_SECRET holds 5 bytes; a cluster secret needs at least 16/,
    );
    expect(
      usageError(["run", ...cluster], { WAXFLOW_CLUSTER_SECRET: TEST_SECRET, WAXFLOW_CLUSTER_SECRET_FILE: "/x" }, io),
    ).toMatch(/^WAXFLOW_CLUSTER_SECRET and WAXFLOW_CLUSTER_SECRET_FILE both give the cluster secret/);
    expect(usageError(["run", ...cluster], { WAXFLOW_CLUSTER_SECRET_FILE: "/missing" }, io)).toMatch(
      /^WAXFLOW_CLUSTER_SECRET_FILE: cannot read "\/missing": ENOENT/,
    );
    expect(usageError(["run", ...cluster, "--insecure-cluster"], { WAXFLOW_CLUSTER_SECRET: TEST_SECRET })).toMatch(
      /exclude each other/,
    );
  });

  test("--insecure-cluster runs a cluster without a secret", () => {
    expect(config([...cluster, "--insecure-cluster"], { WAXFLOW_CLUSTER_SECRET: "" }).mesh.secret).toBe("insecure");
    expect(config(cluster, { WAXFLOW_CLUSTER_SECRET: "", WAXFLOW_INSECURE_CLUSTER: "true" }).mesh.secret).toBe(
      "insecure",
    );
  });

  test("--cluster-tls, --listen and --peer-timeout, or their variables", () => {
    expect(config([...cluster, "--cluster-tls", "--listen", "10.1.2.3", "--peer-timeout", "30"]).mesh).toMatchObject({
      tls: true,
      listenHost: "10.1.2.3",
      peerTimeoutMs: 30_000,
    });
    const env = { WAXFLOW_CLUSTER_TLS: "1", WAXFLOW_LISTEN: "[fd00::1]", WAXFLOW_PEER_TIMEOUT: "2.5" };
    expect(config(cluster, env).mesh).toMatchObject({ tls: true, listenHost: "fd00::1", peerTimeoutMs: 2500 });
    expect(usageError(["run", ...cluster, "--peer-timeout", "0"], { WAXFLOW_CLUSTER_SECRET: TEST_SECRET })).toMatch(
      /^--peer-timeout must be a number of seconds > 0/,
    );
    expect(usageError(["run", ...cluster, "--listen", "a:1"], { WAXFLOW_CLUSTER_SECRET: TEST_SECRET })).toMatch(
      /^--listen must be a host name or IP address/,
    );
  });
});

describe("where a process starts from", () => {
  test("--start-from wins over WAXFLOW_START_FROM; fresh:<token> and savepoint:<id> parse, with the savepoint prefix", () => {
    const env = { WAXFLOW_START_FROM: "fresh:a", WAXFLOW_SAVEPOINT_PREFIX: "prod/src" };
    expect(config(["f.ts", "-r", "/r"], env)).toMatchObject({
      startFrom: { kind: "fresh", token: "a", value: "fresh:a" },
      savepointPrefix: "prod/src",
    });
    const flagged = config(["f.ts", "-r", "/r", "--start-from", "savepoint:sp-1", "--savepoint-prefix", "p"], env);
    expect(flagged).toMatchObject({
      startFrom: { kind: "savepoint", id: "sp-1", value: "savepoint:sp-1" },
      savepointPrefix: "p",
    });
    // A token after @ applies the same savepoint again (a rollback to it): a new marker value.
    expect(config(["f.ts", "-r", "/r", "--start-from", "savepoint:sp-1@rollback-3"]).startFrom).toEqual({
      kind: "savepoint",
      id: "sp-1",
      value: "savepoint:sp-1@rollback-3",
    });
    // Kubernetes writes "" for "not set".
    expect(config(["f.ts"], { WAXFLOW_START_FROM: "" }).startFrom).toBeUndefined();
  });

  test("bad values and meaningless combinations are refused in one line naming the flag or variable", () => {
    expect(usageError(["run", "f.ts", "--start-from", "latest"])).toBe(
      '--start-from: expected fresh:<token> or savepoint:<id>, got "latest"',
    );
    expect(usageError(["run", "f.ts"], { WAXFLOW_START_FROM: "savepoint:Bad_Id" })).toBe(
      'WAXFLOW_START_FROM: savepoint id "Bad_Id" is not [a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?',
    );
    expect(usageError(["run", "f.ts", "--start-from", "fresh:"])).toMatch(/^--start-from: fresh token "" is not/);
    expect(usageError(["run", "f.ts", "--start-from", "savepoint:sp-1@"])).toMatch(
      /^--start-from: savepoint token "" \(after @\) is not/,
    );
    expect(unsupported(config(["f.ts", "--start-from", "fresh:x"]))).toBe(
      "--start-from (WAXFLOW_START_FROM) only applies with recovery: add -r/--recovery-directory",
    );
    expect(unsupported(config(["f.ts", "-r", "/r", "--start-from", "savepoint:sp-1"]))).toMatch(
      /^--start-from savepoint:<id> reads the savepoint from the backup bucket: add --backup-bucket/,
    );
    expect(unsupported(config(["f.ts", "-r", "/r", "--start-from", "fresh:x"]))).toBeUndefined();
  });
});

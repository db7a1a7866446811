// The watch's recovery paths against a scripted fake API server: 410 Gone relists,
// a silent watch is restarted by the stall watchdog, and the handler sees every object.
import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { KubeConfig, type KubernetesObject } from "@kubernetes/client-node";
import { afterEach, expect, test } from "vitest";
import { ResilientWatch } from "../src/kube/watch.ts";
import { setQuiet } from "../src/log.ts";

setQuiet(true);
const servers: Server[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

const pod = (name: string, rv: string) => ({
  apiVersion: "v1",
  kind: "Pod",
  metadata: { name, namespace: "n", resourceVersion: rv },
});

/** A fake API server serving pods (on `port`, or any free one); `seen` counts its requests. */
async function fakeApi(onWatch: (n: number, res: ServerResponse) => void, port = 0) {
  const seen = { lists: 0, watches: 0, watchRvs: [] as string[] };
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    res.setHeader("content-type", "application/json");
    if (url.pathname === "/api/v1") {
      res.end(
        JSON.stringify({
          kind: "APIResourceList",
          groupVersion: "v1",
          resources: [{ name: "pods", singularName: "pod", namespaced: true, kind: "Pod", verbs: ["list", "watch"] }],
        }),
      );
    } else if (url.pathname === "/api/v1/pods" && url.searchParams.get("watch") === "true") {
      seen.watches++;
      seen.watchRvs.push(url.searchParams.get("resourceVersion") ?? "");
      res.writeHead(200);
      res.flushHeaders();
      onWatch(seen.watches, res);
    } else if (url.pathname === "/api/v1/pods") {
      seen.lists++;
      res.end(
        JSON.stringify({
          kind: "PodList",
          apiVersion: "v1",
          metadata: { resourceVersion: `${seen.lists * 100}` },
          items: [pod("a", "1")],
        }),
      );
    } else {
      res.writeHead(404).end();
    }
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(port, "127.0.0.1", r));
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [
      { name: "c", server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true },
    ],
    users: [{ name: "u" }],
    contexts: [{ name: "x", cluster: "c", user: "u" }],
    currentContext: "x",
  });
  return { kc, seen };
}

async function until(cond: () => boolean, ms = 5000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met");
    await new Promise((r) => setTimeout(r, 20));
  }
}

test("410 Gone relists; a silent watch is restarted from its resourceVersion", async () => {
  const { kc, seen } = await fakeApi((n, res) => {
    if (n === 1) {
      res.end(`${JSON.stringify({ type: "ERROR", object: { kind: "Status", code: 410, reason: "Expired" } })}\n`);
    } else if (n === 2) {
      res.write(`${JSON.stringify({ type: "ADDED", object: pod("b", "205") })}\n`);
      // then silence: the stall watchdog must notice
    }
  });
  const events: string[] = [];
  const restarts: string[] = [];
  const watch = new ResilientWatch(
    kc,
    { apiVersion: "v1", kind: "Pod", plural: "pods" },
    (type, obj: KubernetesObject) => events.push(`${type} ${obj.metadata?.name}`),
    { stallMs: 400, onRestart: (r) => restarts.push(r) },
  );
  watch.start();
  await until(() => seen.watches >= 3);
  await watch.stop();
  expect(seen.lists).toBe(2);
  expect(restarts.slice(0, 2)).toEqual(["gone", "stalled"]);
  expect(seen.watchRvs.slice(0, 3)).toEqual(["100", "200", "205"]);
  expect(events).toEqual(["SYNC a", "SYNC a", "ADDED b"]);
});

test("an unreachable API server is retried with backoff until it answers", async () => {
  const { kc, seen } = await fakeApi(() => {});
  const port = Number(new URL(kc.getCurrentCluster()?.server ?? "").port);
  servers[0]?.close();
  const restarts: string[] = [];
  const watch = new ResilientWatch(kc, { apiVersion: "v1", kind: "Pod", plural: "pods" }, () => {}, {
    maxBackoffMs: 200,
    onRestart: (r) => restarts.push(r),
  });
  watch.start();
  await until(() => restarts.length >= 2);
  expect(watch.synced).toBe(false);
  // The same port comes back.
  await fakeApi(() => {}, port);
  await until(() => watch.synced);
  await watch.stop();
  expect(seen.lists).toBe(0);
});

test("the cache keeps trimmed objects, indexed by owner, through label changes and deletes", async () => {
  const labelled = (name: string, owner: string, rv: string) => ({
    ...pod(name, rv),
    metadata: { ...pod(name, rv).metadata, labels: { owner }, managedFields: [{ manager: "m" }] },
  });
  const { kc, seen } = await fakeApi((n, res) => {
    if (n !== 1) return;
    for (const [type, obj] of [
      ["ADDED", labelled("b", "x", "101")],
      ["ADDED", labelled("c", "x", "102")],
      ["MODIFIED", labelled("b", "y", "103")],
      ["DELETED", labelled("c", "x", "104")],
    ] as const) {
      res.write(`${JSON.stringify({ type, object: obj })}\n`);
    }
  });
  const handled: string[] = [];
  const watch = new ResilientWatch(
    kc,
    {
      apiVersion: "v1",
      kind: "Pod",
      plural: "pods",
      trim: (obj) => ({ kind: obj.kind, metadata: { name: obj.metadata?.name, labels: obj.metadata?.labels } }),
      indexBy: (obj) => obj.metadata?.labels?.owner,
    },
    (type, obj) => handled.push(`${type} ${obj.metadata?.name} ${JSON.stringify(obj.metadata)}`),
  );
  watch.start();
  await until(() => handled.length === 5);
  await watch.stop();
  expect(seen.watches).toBe(1);
  const names = (owner: string) => [...watch.indexed(owner)].map((o) => o.metadata?.name);
  expect(names("x")).toEqual([]);
  expect(names("y")).toEqual(["b"]);
  expect([...watch.indexed("y")][0]).toEqual({ kind: "Pod", metadata: { name: "b", labels: { owner: "y" } } });
  // "a" from the list has no label: kept, but in no index.
  expect(handled[0]).toBe('SYNC a {"name":"a"}');
});

import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, test } from "vitest";
import { loadKubeConfig, targetNamespace } from "../src/kube.ts";

const dir = mkdtempSync(join(tmpdir(), "waxctl-kube-"));
const kubeconfig = join(dir, "config");
writeFileSync(
  kubeconfig,
  `apiVersion: v1
kind: Config
current-context: dev
clusters:
  - name: local
    cluster: { server: "https://127.0.0.1:6443" }
users:
  - name: me
    user: { token: "t" }
contexts:
  - name: dev
    context: { cluster: local, user: me, namespace: streams }
  - name: bare
    context: { cluster: local, user: me }
`,
);
const emptyHome = mkdtempSync(join(tmpdir(), "waxctl-home-"));

test("the namespace comes from -n, else the context, else default", async () => {
  const config = await loadKubeConfig({ kubeconfig }, {}, emptyHome);
  expect(targetNamespace({}, config)).toBe("streams");
  expect(targetNamespace({ namespace: "other" }, config)).toBe("other");
  expect(targetNamespace({}, await loadKubeConfig({ kubeconfig, context: "bare" }, {}, emptyHome))).toBe("default");
  expect(targetNamespace({}, await loadKubeConfig({}, { KUBECONFIG: kubeconfig }, emptyHome))).toBe("streams");
  expect(targetNamespace({}, await loadKubeConfig({}, {}, emptyHome))).toBe("default");
});

test("a missing kubeconfig, an unknown context or a bad namespace is one line naming the flag", async () => {
  await expect(loadKubeConfig({ kubeconfig: join(dir, "nope") }, {}, emptyHome)).rejects.toThrow(
    /^--kubeconfig names .*nope, which does not exist/,
  );
  await expect(loadKubeConfig({}, { KUBECONFIG: join(dir, "nope") }, emptyHome)).rejects.toThrow(/^\$KUBECONFIG names/);
  await expect(loadKubeConfig({ kubeconfig, context: "prod" }, {}, emptyHome)).rejects.toThrow(
    "--context prod is not in the kubeconfig; known contexts: dev, bare",
  );
  expect(() => targetNamespace({ namespace: "Bad_NS" }, undefined)).toThrow(/^-n\/--namespace "Bad_NS"/);
});

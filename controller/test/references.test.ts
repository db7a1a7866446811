// referencesOf(): the Secrets and ConfigMaps a pod template cannot start without.
import { withDefaults } from "@waxflow/crds";
import { expect, test } from "vitest";
import { desiredStatefulSet } from "../src/desired/objects.ts";
import { referencesOf } from "../src/desired/references.ts";
import { dataflow } from "./fixtures.ts";

test("env, envFrom and volumes, optional ones left out; the cluster secret skipped", () => {
  const df = dataflow({
    env: [
      { name: "DB_PASSWORD", valueFrom: { secretKeyRef: { name: "db", key: "password" } } },
      { name: "MAYBE", valueFrom: { secretKeyRef: { name: "maybe", key: "k", optional: true } } },
      { name: "LEVEL", valueFrom: { configMapKeyRef: { name: "settings", key: "level" } } },
    ],
    envFrom: [{ secretRef: { name: "kafka" } }, { secretRef: { name: "db" } }],
    podTemplate: {
      spec: {
        containers: [],
        volumes: [
          { name: "certs", secret: { secretName: "tls" } },
          { name: "both", projected: { sources: [{ configMap: { name: "ca" } }] } },
        ],
      },
    },
  });
  const spec = desiredStatefulSet(df, withDefaults(df.spec), 1).spec?.template.spec;
  expect(referencesOf(spec, ["wc-cluster-secret"])).toEqual([
    { kind: "Secret", name: "db", where: "env DB_PASSWORD of container waxflow" },
    { kind: "ConfigMap", name: "settings", where: "env LEVEL of container waxflow" },
    { kind: "Secret", name: "kafka", where: "envFrom of container waxflow" },
    { kind: "Secret", name: "tls", where: "volume certs" },
    { kind: "ConfigMap", name: "ca", where: "volume both" },
  ]);
  expect(referencesOf(spec).map((r) => r.name)).toContain("wc-cluster-secret");
});

// The Kafka broker image's inputs and configuration, without building it (the kind suite
// builds and runs it: e2e/kafka.e2e.test.ts): what the lock pins is what a headless broker
// needs, and the entrypoint starts java on exactly those jars with no shell.
import { expect, test } from "vitest";
import { JAVA_HOME, JRE_PACKAGES, KAFKA_LIBS, kafkaImageConfig, readKafkaLock } from "../kafka.ts";

test("the lock pins the JRE's packages and Kafka's jars, each once, by SHA-256", async () => {
  const lock = await readKafkaLock();
  expect(lock.debian.suite).toBe("bookworm");
  expect(lock.debian.packages.map((p) => p.package)).toEqual([...JRE_PACKAGES]);
  const names = lock.jars.map((j) => j.path.split("/").at(-1));
  expect(new Set(names).size).toBe(names.length);
  expect(names).toContain(`kafka_2.13-${lock.kafka}.jar`);
  expect(names).toContain(`kafka-clients-${lock.kafka}.jar`);
  // Without a binding for the slf4j-api 1.7 the broker pulls, it logs nothing.
  expect(names.some((n) => n?.startsWith("log4j-slf4j-impl-"))).toBe(true);
  for (const pinned of [...lock.debian.packages, ...lock.jars]) {
    expect(pinned.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(pinned.size).toBeGreaterThan(0);
  }
});

test("the entrypoint is java on the jars; the default command starts the broker on /config", () => {
  const config = kafkaImageConfig();
  expect(config.Entrypoint).toEqual([
    `${JAVA_HOME}/bin/java`,
    "-XX:-UsePerfData",
    "-Dlog4j2.configurationFile=/opt/kafka/config/log4j2.properties",
    "-cp",
    `${KAFKA_LIBS}/*`,
  ]);
  expect(config.Cmd).toEqual(["kafka.Kafka", "/config/server.properties"]);
});

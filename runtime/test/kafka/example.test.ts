// examples/kafka-anonymize.ts run by the CLI against a real broker, as the README says.
import { resolve } from "node:path";
import { expect, test } from "vitest";
import { childProcesses } from "../support/processes.ts";
import { brokerForFile, createTopic, produce, readTopic } from "./kafka.ts";

const ROOT = resolve(import.meta.dirname, "../../..");
const broker = brokerForFile();
const processes = childProcesses();

test("kafka-anonymize: emails masked, the company's own dropped, exactly-once output", async () => {
  const input = await createTopic(broker(), "in_topic", 1);
  const output = await createTopic(broker(), "out_topic", 1);
  const events = [
    { user: "ada", email: "ada@example.com" },
    { user: "bob", email: "bob@bytewax.io" },
    { user: "cyd", email: "cyd@mail.example.net" },
  ];
  await produce(
    broker(),
    events.map((e) => ({ topic: input, value: Buffer.from(JSON.stringify(e)) })),
  );
  const run = processes.start(
    [
      resolve(ROOT, "runtime/src/cli.ts"),
      "run",
      "examples/kafka-anonymize.ts",
      "-r",
      processes.tempDir("waxflow-anon-"),
      "--recovery-init",
      "-s",
      "0.5",
    ],
    {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? "",
        WAXFLOW_API_PORT: "0",
        KAFKA_BROKERS: broker().address,
        KAFKA_IN_TOPIC: input,
        KAFKA_OUT_TOPIC: output,
      },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let stdout = "";
  run.child.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
  await expect
    .poll(async () => (await readTopic(broker(), output, 1)).map((r) => JSON.parse(r.value ?? "null")), {
      timeout: 30_000,
      interval: 250,
    })
    .toEqual([
      { user: "ada", email: "******@example.com" },
      { user: "cyd", email: "******@mail.example.net" },
    ]);
  expect(stdout).toContain("kafka_in_out.inspect-oks: ");
  expect(run.child.exitCode).toBeNull();
}, 60_000);

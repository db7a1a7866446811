/**
 * Writes lines to a topic and reads a topic back, for trying the Kafka examples against
 * local-broker.ts (the broker from Maven Central has no console tools):
 *
 *   npx node runtime/test/kafka/console.ts write 127.0.0.1:9092 TOPIC < lines   # one message per line
 *   npx node runtime/test/kafka/console.ts read 127.0.0.1:9092 TOPIC            # what read_committed sees
 */
import { text } from "node:stream/consumers";
import { produce, readTopic } from "./topics.ts";

const USAGE = "usage: console.ts write|read HOST:PORT TOPIC";
const [command, address, topic] = process.argv.slice(2);
if ((command !== "write" && command !== "read") || address === undefined || topic === undefined) {
  process.stderr.write(`error: ${USAGE}\n`);
  process.exit(2);
}
const broker = { address };
try {
  if (command === "write") {
    const lines = (await text(process.stdin)).split("\n").filter((line) => line !== "");
    await produce(
      broker,
      lines.map((line) => ({ topic, value: Buffer.from(line) })),
    );
    process.stdout.write(`wrote ${lines.length} message(s) to ${topic}\n`);
  } else {
    for (const r of await readTopic(broker, topic)) process.stdout.write(`${r.value ?? ""}\n`);
  }
} catch (err) {
  process.stderr.write(`error: ${command} ${topic} at ${address}: ${(err as Error).message}\n`);
  process.exit(1);
}

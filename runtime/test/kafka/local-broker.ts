/**
 * A local Kafka broker to try the Kafka examples against, the one the tests use:
 *
 *   node runtime/test/kafka/local-broker.ts [port] [topic ...]
 *
 * (Node 24: `npx node ...` from the repository.) Starts one KRaft node on 127.0.0.1:port
 * (default 9092), creates the topics (3 partitions each), and runs until Ctrl-C, which
 * stops it and removes its data.
 */
import { KafkaAdmin } from "../../src/connectors/kafka/client.ts";
import { startBroker } from "./broker.ts";

const [portArg = "9092", ...topics] = process.argv.slice(2);
const port = Number(portArg);
if (!Number.isInteger(port) || port < 1 || port > 65_535) {
  process.stderr.write(`error: port must be a number from 1 to 65535, got ${JSON.stringify(portArg)}\n`);
  process.exit(2);
}
const broker = await startBroker({ clientPort: port });
const admin = new KafkaAdmin([broker.address]);
for (const topic of topics) await admin.createTopic(topic, 3);
await admin.close();
process.stdout.write(
  `Kafka ${broker.address} is up${topics.length > 0 ? ` with topics ${topics.join(", ")}` : ""}; Ctrl-C stops it\n`,
);
const stop = (): void => {
  broker.stop().then(() => process.exit(0));
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);

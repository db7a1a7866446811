/** One broker for the tests of a file, and the topic helpers they use on it. */
import { afterAll, beforeAll } from "vitest";
import { type Broker, type BrokerOptions, startBroker } from "./broker.ts";

export { createTopic, produce, type ReadRecord, readTopic } from "./topics.ts";

/** One broker for the tests of a file: started before them, stopped after. */
export function brokerForFile(options: BrokerOptions = {}): () => Broker {
  let broker: Broker | undefined;
  beforeAll(async () => {
    broker = await startBroker(options);
  }, 180_000);
  afterAll(async () => {
    await broker?.stop();
  });
  return () => {
    if (broker === undefined) throw new Error("the broker did not start");
    return broker;
  };
}

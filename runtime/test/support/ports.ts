import { type AddressInfo, createServer } from "node:net";

/** Ports free on loopback right now, for processes a test starts. */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((ready) => {
          const server = createServer();
          server.listen(0, "127.0.0.1", () => ready(server));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((closed) => s.close(closed))));
  return ports;
}

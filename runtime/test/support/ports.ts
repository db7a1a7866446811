import { createServer } from "node:net";

/**
 * Below Linux's ephemeral range (32768-60999): a port the kernel hands out for an
 * outgoing connection (tests make many) can never collide with one chosen here.
 */
const LOW = 10_000;
const HIGH = 32_767;

function bindable(port: number): Promise<boolean> {
  return new Promise((answer) => {
    const server = createServer();
    server.once("error", () => answer(false));
    // All addresses, as the mesh and the API listen: a port taken on any of them is taken.
    server.listen(port, () => server.close(() => answer(true)));
  });
}

/** Ports free right now, for processes a test starts; picked at random so parallel tests rarely meet. */
export async function freePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) {
    const port = LOW + Math.floor(Math.random() * (HIGH - LOW));
    if (!ports.has(port) && (await bindable(port))) ports.add(port);
  }
  return [...ports];
}

export async function freePort(): Promise<number> {
  return (await freePorts(1))[0] as number;
}

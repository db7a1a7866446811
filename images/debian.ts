// The images' operating system, as distroless images are made: files of a few Debian
// packages (glibc, libstdc++, CA certificates, time zones) with no package manager and no
// shell. Versions are pinned in debian.lock.json; the .debs are fetched from the Debian
// mirror, checked against the lock's SHA-256 and cached.
import { execFile, spawn } from "node:child_process";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { GID, sha256, type TarEntry, tarLayer, UID } from "@waxflow/oci";
import { extract } from "tar-stream";

const run = promisify(execFile);

/** What Node 24 needs (see `ldd node`: libc, libm, libdl, libpthread, libstdc++, libgcc_s), plus data files. */
export const PACKAGES = [
  "base-files",
  "netbase",
  "tzdata",
  "ca-certificates",
  "libc6",
  "libgcc-s1",
  "gcc-12-base",
  "libstdc++6",
] as const;

export interface LockedDeb {
  readonly package: string;
  readonly file: string;
  readonly url: string;
  readonly size: number;
  readonly sha256: string;
}

export interface DebianLock {
  readonly suite: string;
  readonly packages: readonly LockedDeb[];
}

export const LOCK_FILE = new URL("./debian.lock.json", import.meta.url);

/** The lock for the versions of `packages` apt would install now (after `apt-get update`). */
export async function resolveLock(order: readonly string[] = PACKAGES): Promise<DebianLock> {
  const { stdout } = await run("apt-get", ["download", "--print-uris", ...order]);
  // 'http://deb.debian.org/debian/pool/.../libc6_2.36-9%2bdeb12u14_amd64.deb' libc6_2.36-9+deb12u14_amd64.deb 2759320 SHA256:ba4f...
  const packages = stdout
    .trim()
    .split("\n")
    .map((line): LockedDeb => {
      const m = /^'([^']+)' (\S+) (\d+) SHA256:([0-9a-f]{64})$/.exec(line.trim());
      if (m === null) throw new Error(`unexpected apt-get output: ${line}`);
      const [, url = "", file = "", size = "", hex = ""] = m;
      return { package: file.split("_")[0] ?? file, file, url, size: Number(size), sha256: hex };
    })
    .sort((a, b) => order.indexOf(a.package) - order.indexOf(b.package));
  const { stdout: release } = await run("sh", ["-c", ". /etc/os-release && echo $VERSION_CODENAME"]);
  return { suite: release.trim(), packages };
}

/** The .deb files of the lock, fetched into `dir` when missing, each checked against its SHA-256. */
export async function fetchDebs(lock: DebianLock, dir: string, log: (line: string) => void): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const paths: string[] = [];
  for (const deb of lock.packages) {
    const path = join(dir, deb.file);
    const cached = await readFile(path).catch(() => undefined);
    if (cached === undefined || sha256(cached) !== `sha256:${deb.sha256}`) {
      log(`fetching ${deb.url}`);
      const response = await fetch(deb.url);
      if (!response.ok)
        throw new Error(
          `${deb.url}: HTTP ${response.status}; the mirror no longer has ${deb.file}: run \`npm run images -- --update-lock\` after \`apt-get update\``,
        );
      const bytes = Buffer.from(await response.arrayBuffer());
      if (sha256(bytes) !== `sha256:${deb.sha256}`)
        throw new Error(`${deb.url}: SHA-256 is not the one in ${LOCK_FILE.pathname}`);
      await writeFile(`${path}.tmp`, bytes);
      await rename(`${path}.tmp`, path);
    }
    paths.push(path);
  }
  return paths;
}

// Documentation and tool data a distroless image leaves out; copyright files stay.
const DROPPED = /^usr\/share\/(man|info|lintian|gdb|gcc|bug)\/|^usr\/share\/doc\/[^/]+\/(?!copyright$)/;
// usrmerge: what a package puts in /bin, /lib, ... lives in /usr/bin, /usr/lib, ...
const MERGED = /^(bin|sbin|lib|lib64)(\/|$)/;

/** The files of one .deb, with /bin, /lib... moved under /usr and documentation left out. */
async function debEntries(path: string): Promise<{ entries: TarEntry[]; control: string }> {
  const { stdout: control } = await run("dpkg-deb", ["--field", path]);
  const child = spawn("dpkg-deb", ["--fsys-tarfile", path], { stdio: ["ignore", "pipe", "inherit"] });
  const ex = extract();
  child.stdout.pipe(ex);
  const exited = new Promise<void>((ok, fail) =>
    child.on("close", (code) => (code === 0 ? ok() : fail(new Error(`dpkg-deb --fsys-tarfile ${path}: exit ${code}`)))),
  );
  const entries: TarEntry[] = [];
  for await (const entry of ex) {
    const chunks: Buffer[] = [];
    for await (const chunk of entry) chunks.push(chunk as Buffer);
    const { name, type, mode, linkname } = entry.header;
    const path = name
      .replace(/^\.?\//, "")
      .replace(/\/$/, "")
      .replace(MERGED, "usr/$1$2");
    if (path === "" || DROPPED.test(path)) continue;
    if (type === "file") entries.push({ path, type, mode, contents: Buffer.concat(chunks) });
    else if (type === "directory") entries.push({ path, type, mode });
    else if (type === "symlink") entries.push({ path, type, target: linkname });
    else throw new Error(`${path} in ${name}: ${type} entries are not supported`);
  }
  await exited;
  return { entries, control };
}

const PASSWD = `root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:${UID}:${GID}:nonroot:/home/nonroot:/sbin/nologin
`;
const GROUP = `root:x:0:
nobody:x:65534:
nonroot:x:${GID}:
`;

/** The packages' files (usrmerged, documentation left out) and dpkg's status.d records so scanners see them. */
export async function packageEntries(debs: readonly string[]): Promise<TarEntry[]> {
  const entries: TarEntry[] = [];
  for (const deb of debs) {
    const { entries: files, control } = await debEntries(deb);
    entries.push(...files);
    const name = /^Package: (\S+)$/m.exec(control)?.[1] ?? deb;
    entries.push({ path: `var/lib/dpkg/status.d/${name}`, type: "file", contents: Buffer.from(control) });
  }
  return entries;
}

/**
 * The root filesystem: the packages' files, usrmerge links, users (root, nobody, nonroot
 * 65532), the CA bundle update-ca-certificates would make, and dpkg's status.d records.
 */
export async function rootfsEntries(debs: readonly string[]): Promise<TarEntry[]> {
  const entries = await packageEntries(debs);
  const certs = entries
    .filter((e) => e.type === "file" && /^usr\/share\/ca-certificates\/.*\.crt$/.test(e.path))
    .sort((a, b) => (a.path < b.path ? -1 : 1))
    .map((e) => (e.type === "file" ? Buffer.from(e.contents) : Buffer.alloc(0)));
  if (certs.length === 0) throw new Error("ca-certificates brought no certificates");
  const text = (path: string, contents: string): TarEntry => ({ path, type: "file", contents: Buffer.from(contents) });
  return [
    ...entries,
    ...["bin", "sbin", "lib", "lib64"].map((d): TarEntry => ({ path: d, type: "symlink", target: `usr/${d}` })),
    text("etc/passwd", PASSWD),
    text("etc/group", GROUP),
    text("etc/nsswitch.conf", "passwd: files\ngroup: files\nhosts: files dns\n"),
    { path: "etc/ssl/certs/ca-certificates.crt", type: "file", contents: Buffer.concat(certs) },
    { path: "home/nonroot", type: "directory", mode: 0o700, uid: UID, gid: GID },
  ];
}

export async function readLock(): Promise<DebianLock> {
  return JSON.parse(await readFile(LOCK_FILE, "utf8")) as DebianLock;
}

/** The OS layer every image starts with, byte for byte the same: a node that holds one image holds it for all. */
export async function osLayer(lock: DebianLock, debs: readonly string[]) {
  return {
    layer: await tarLayer(await rootfsEntries(debs)),
    createdBy: `debian ${lock.suite}: ${lock.packages.map((p) => p.file).join(" ")}`,
  };
}

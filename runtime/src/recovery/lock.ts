/**
 * One live process per recovery directory. The lock is SQLite's exclusive lock on
 * `lock` (an fcntl lock, and SQLite's own bookkeeping between connections of one
 * process), held for as long as the process keeps the store open. The kernel drops it
 * when the process dies, SIGKILL included, so a restarted pod on the same volume is
 * never locked out by its dead predecessor, whatever its pid or host. `lock.owner` only
 * says who holds it, for the error a second process prints.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { RecoveryDirectoryInUseError, RecoveryError } from "./errors.ts";

const LOCK_FILE = "lock";
const OWNER_FILE = "lock.owner";
const SQLITE_BUSY = 5;

export class DirectoryLock {
  readonly #db: DatabaseSync;

  private constructor(db: DatabaseSync) {
    this.#db = db;
  }

  /** Takes `dir` for this process, or fails at once naming the process that has it. */
  static acquire(dir: string): DirectoryLock {
    const path = join(dir, LOCK_FILE);
    let db: DatabaseSync | undefined;
    try {
      db = new DatabaseSync(path);
      // Exclusive locking mode keeps the lock taken by the first transaction until close.
      db.exec("PRAGMA locking_mode = EXCLUSIVE; PRAGMA busy_timeout = 0; BEGIN EXCLUSIVE; COMMIT;");
    } catch (err) {
      db?.close();
      if ((err as { errcode?: number }).errcode === SQLITE_BUSY) {
        throw new RecoveryDirectoryInUseError(
          `recovery directory ${dir} is in use by another process (${owner(dir)}); ` +
            "each process needs a directory of its own: stop that process first, or give this one another -r directory",
        );
      }
      throw new RecoveryError(`cannot lock recovery directory ${dir} (${path}): ${(err as Error).message}`, {
        cause: err,
      });
    }
    try {
      writeFileSync(
        join(dir, OWNER_FILE),
        `pid ${process.pid} on host ${hostname()}, since ${new Date().toISOString()}\n`,
      );
    } catch {
      // Only the message of a second process would miss it.
    }
    return new DirectoryLock(db);
  }

  release(): void {
    if (this.#db.isOpen) this.#db.close();
  }
}

function owner(dir: string): string {
  try {
    return readFileSync(join(dir, OWNER_FILE), "utf8").trim();
  } catch {
    return "owner unknown";
  }
}

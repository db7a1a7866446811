/**
 * Anonymize email addresses: read one address per line, drop the lines that are not
 * addresses (filter), and mask each user name but its first letter (map).
 *
 *   npx node --conditions=waxflow-source runtime/src/cli.ts run examples/anonymize.ts
 */
import { join } from "node:path";
import { Dataflow } from "waxflow";
import { FileSource } from "waxflow/connectors/files";
import { StdOutSink } from "waxflow/connectors/stdio";
import * as op from "waxflow/operators";

const EMAIL = /^([^@\s]+)@([^@\s]+\.[^@\s]+)$/;

function mask(email: string): string {
  const [, user = "", domain = ""] = EMAIL.exec(email) ?? [];
  return `${user.slice(0, 1)}${"*".repeat(user.length - 1)}@${domain}`;
}

export const flow = new Dataflow("anonymize");
const lines = op.input("inp", flow, new FileSource(join(import.meta.dirname, "data", "contacts.txt")));
const emails = op.filter("is_email", lines, (line) => EMAIL.test(line));
op.output("out", op.map("mask", emails, mask), new StdOutSink());

/**
 * Join two keyed streams: user names and email addresses, both keyed by user id. A row
 * is emitted once both sides of a key have arrived; ids on one side only emit nothing.
 *
 *   npx node --conditions=waxflow-source runtime/src/cli.ts run examples/join.ts
 */
import { join } from "node:path";
import { Dataflow } from "waxflow";
import { CSVSource } from "waxflow/connectors/files";
import { StdOutSink } from "waxflow/connectors/stdio";
import * as op from "waxflow/operators";

const data = (file: string) => new CSVSource(join(import.meta.dirname, "data", file));

export const flow = new Dataflow("join");
const users = op.input("users", flow, data("users.csv"));
const names = op.map("name_by_id", users, (row): [string, string] => [row.user_id ?? "", row.name ?? ""]);
const contacts = op.input("emails", flow, data("emails.csv"));
const emails = op.map("email_by_id", contacts, (row): [string, string] => [row.user_id ?? "", row.email ?? ""]);
const joined = op.join("join", names, emails);
op.output(
  "out",
  op.map("format", joined, ([id, [name, email]]) => `${id}: ${name} <${email}>`),
  new StdOutSink(),
);

// `waxctl dff` or `waxctl df deploi`: one line naming the unknown word and the commands
// there are, instead of oclif's boxed error.
import type { Hook } from "@oclif/core";

const hook: Hook.CommandNotFound = async function (options) {
  const words = options.id.split(":");
  const ids = options.config.commandIDs;
  // The longest known topic the words start with, and the first word after it.
  let topic = 0;
  while (topic < words.length && ids.some((id) => id.startsWith(`${words.slice(0, topic + 1).join(":")}:`))) topic++;
  const under = words.slice(0, topic);
  const prefix = under.map((w) => `${w}:`).join("");
  // The commands and topics one level down, as `waxctl <topic> --help` lists them.
  const known = [...new Set(ids.filter((id) => id.startsWith(prefix)).map((id) => id.split(":")[topic]))].sort();
  const unknown = [...under, words[topic]].join(" ");
  const help = ["waxctl", ...under, "--help"].join(" ");
  if (words[topic]?.startsWith("-")) {
    process.stderr.write(`error: unknown flag ${words[topic]}; name a command first (see \`${help}\`)\n`);
    return this.exit(2);
  }
  process.stderr.write(`error: unknown command "${unknown}"; the commands are ${known.join(", ")} (see \`${help}\`)\n`);
  this.exit(2);
};

export default hook;

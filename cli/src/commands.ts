// oclif's explicit command strategy: the command ids and their classes, so oclif loads
// TypeScript sources without scanning a compiled directory.
import DfDeploy from "./commands/df/deploy.ts";
import Run from "./commands/run.ts";

export const COMMANDS = {
  run: Run,
  "df:deploy": DfDeploy,
};

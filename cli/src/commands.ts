// oclif's explicit command strategy: the command ids and their classes, so oclif loads
// TypeScript sources without scanning a compiled directory.
import DfDelete from "./commands/df/delete.ts";
import DfDeploy from "./commands/df/deploy.ts";
import DfDescribe from "./commands/df/describe.ts";
import DfFork from "./commands/df/fork.ts";
import DfList from "./commands/df/list.ts";
import DfLogs from "./commands/df/logs.ts";
import DfRender from "./commands/df/render.ts";
import DfRestart from "./commands/df/restart.ts";
import DfResume from "./commands/df/resume.ts";
import DfSavepointCreate from "./commands/df/savepoint/create.ts";
import DfSavepointDelete from "./commands/df/savepoint/delete.ts";
import DfSavepointList from "./commands/df/savepoint/list.ts";
import DfScale from "./commands/df/scale.ts";
import DfState from "./commands/df/state.ts";
import DfSuspend from "./commands/df/suspend.ts";
import DfTop from "./commands/df/top.ts";
import ImageBuild from "./commands/image/build.ts";
import Install from "./commands/install.ts";
import Run from "./commands/run.ts";
import Uninstall from "./commands/uninstall.ts";

export const COMMANDS = {
  run: Run,
  "df:deploy": DfDeploy,
  "df:render": DfRender,
  "df:list": DfList,
  "df:describe": DfDescribe,
  "df:logs": DfLogs,
  "df:delete": DfDelete,
  "df:suspend": DfSuspend,
  "df:resume": DfResume,
  "df:scale": DfScale,
  "df:restart": DfRestart,
  "df:top": DfTop,
  "df:state": DfState,
  "df:savepoint:create": DfSavepointCreate,
  "df:savepoint:list": DfSavepointList,
  "df:savepoint:delete": DfSavepointDelete,
  "df:fork": DfFork,
  install: Install,
  uninstall: Uninstall,
  "image:build": ImageBuild,
};

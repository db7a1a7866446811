// oclif's explicit command strategy: the command ids and their classes, so oclif loads
// TypeScript sources without scanning a compiled directory.
import DfDelete from "./commands/df/delete.ts";
import DfDeploy from "./commands/df/deploy.ts";
import DfDescribe from "./commands/df/describe.ts";
import DfList from "./commands/df/list.ts";
import DfLogs from "./commands/df/logs.ts";
import DfRender from "./commands/df/render.ts";
import DfRestart from "./commands/df/restart.ts";
import DfResume from "./commands/df/resume.ts";
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
  install: Install,
  uninstall: Uninstall,
  "image:build": ImageBuild,
};

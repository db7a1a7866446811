#!/usr/bin/env node
// Plain JS so that any Node 24 can start it; the commands are TypeScript that Node's type
// stripping runs as is, so oclif must not look for ts-node or a compiled lib/.
import { execute, settings } from "@oclif/core";

settings.enableAutoTranspile = false;
await execute({ dir: import.meta.url });

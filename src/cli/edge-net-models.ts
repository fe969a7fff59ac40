#!/usr/bin/env node
import "../node/Polyfills.js"
import { runCli } from "./Main.js"
import { modelsCommand } from "./ModelsCommands.js"

runCli(modelsCommand, "edge-net-models", process.argv)

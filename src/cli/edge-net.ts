#!/usr/bin/env node
import "../node/Polyfills.js"
import { edgeNet, runCli } from "./Main.js"

runCli(edgeNet, "edge-net", process.argv)

#!/usr/bin/env node
import { edgeNet, runCli } from "./Main.js"

runCli(edgeNet, "edge-net", process.argv)

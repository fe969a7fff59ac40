#!/usr/bin/env node
import { startCli } from "./Entry.js"

startCli("edge-net-models", () => import("./ModelsTree.js").then((m) => m.modelsTree), process.argv)

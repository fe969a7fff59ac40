#!/usr/bin/env node
import { startCli } from "./Entry.js"

startCli("edge-net", () => import("./Main.js").then((m) => m.edgeNet), process.argv)

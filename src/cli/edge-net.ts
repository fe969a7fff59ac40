#!/usr/bin/env node
import { holdIdleHeap, startsNode } from "../node/IdleHeap.js"
import { startCli } from "./Entry.js"

// Before any module loads: `node start` releases it once the node is at work (NodeCommands.ts).
if (startsNode(process.argv)) holdIdleHeap()
startCli("edge-net", () => import("./Main.js").then((m) => m.edgeNet), process.argv)

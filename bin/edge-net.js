#!/usr/bin/env node
import "../dist/bin/edge-net.js"

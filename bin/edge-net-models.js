#!/usr/bin/env node
import "../dist/cli/edge-net-models.js"

/**
 * Run before each test file: @effect/vitest's `layer()` assigns its layer-bound `effect` and `scoped`
 * onto vitest's one shared `it`, and test files share their worker's modules (isolate: false in
 * vitest.config.ts), so without this a later file's `it.effect` would run in an earlier file's layer,
 * its TestClock included. Each file starts with the methods @effect/vitest exports.
 */
import { effect, flakyTest, it, layer, prop, scoped } from "@effect/vitest"

Object.assign(it, { effect, scoped, layer, prop, flakyTest })

/**
 * A job in a child process of its own, as a node runs the heavy ones (optimizing a model, preparing
 * its first-start models): the node sends one order, the child reports each step as it happens and
 * ends with `Done`, or `Failed` and its one line, then exits. What the job read and allocated (models
 * of megabytes, onnxruntime and its arenas) goes with the child: in the node, the allocator kept it.
 * Both sides are here: `childReports` for the node, `serveOrder` for the child's entry module.
 */
import { Cause, Data, Effect, Exit, Mailbox, Stream } from "effect"
import type { ChildProcess, Serializable } from "node:child_process"

/** How a child's reports end. */
export type Ending = { readonly _tag: "Done" } | { readonly _tag: "Failed"; readonly reason: string }

const isEnding = (message: { readonly _tag: string }): message is Ending =>
  message._tag === "Done" || message._tag === "Failed"

export class ChildFailed extends Data.TaggedError("ChildFailed")<{ readonly reason: string }> {
  override get message() {
    return this.reason
  }
}

/**
 * Sends `order` to the child `start` forks (`moduleProcess`) and streams its reports up to `Done`;
 * fails with the child's line, or says how it ended without one. Interrupted, it kills the child.
 */
export const childReports = <Report extends { readonly _tag: string }>(
  start: () => ChildProcess,
  order: Serializable,
  what: string
): Stream.Stream<Exclude<Report, Ending>, ChildFailed> =>
  Stream.unwrapScoped(Effect.gen(function*() {
    const child = yield* Effect.acquireRelease(
      Effect.sync(start),
      (child) => Effect.sync(() => child.exitCode === null && child.signalCode === null && child.kill())
    )
    const reports = yield* Mailbox.make<Exclude<Report, Ending>, ChildFailed>()
    let ended = false
    child.on("message", (message: Exclude<Report, Ending> | Ending) => {
      if (isEnding(message)) {
        if (message._tag === "Failed") return reports.unsafeDone(Exit.fail(new ChildFailed({ reason: message.reason })))
        ended = true
      } else reports.unsafeOffer(message)
    })
    child.once("error", (error) => reports.unsafeDone(Exit.fail(new ChildFailed({ reason: error.message }))))
    // After the process ended and its channel closed: every message it sent has been read by then.
    child.once("close", (code, signal) =>
      reports.unsafeDone(
        ended ? Exit.void : Exit.fail(
          new ChildFailed({ reason: `${what} ended (${signal ?? `code ${code}`}) before it finished` })
        )
      ))
    child.send(order)
    return Mailbox.toStream(reports)
  }))

/** In the child: reports one step to the node (at once if the node is gone). */
export const report = (message: Serializable): Effect.Effect<void> =>
  Effect.async((resume) => {
    if (!process.connected) return resume(Effect.void)
    process.send!(message, undefined, {}, () => resume(Effect.void))
  })

/** A failure's first line: what the node reports to its caller. */
export const oneLine = (error: unknown) => (error instanceof Error ? error.message : String(error)).split("\n")[0]!

/**
 * In the child's entry module: runs `job` on the order the node sends, then reports `Done` or `Failed`
 * (a string failure as it is, anything else by its first line) and lets the process exit. The node
 * gone (stopped or killed), nobody will read what the job makes: it stops with it.
 */
export const serveOrder = <Order>(job: (order: Order) => Effect.Effect<void, unknown>) => {
  process.once("disconnect", () => process.exit(0))
  process.once("message", (order: Order) => {
    void Effect.runPromise(
      job(order).pipe(
        Effect.exit,
        Effect.flatMap((exit) =>
          report(
            Exit.isSuccess(exit) ? { _tag: "Done" } : { _tag: "Failed", reason: oneLine(Cause.squash(exit.cause)) }
          )
        ),
        Effect.ensuring(Effect.sync(() => process.connected && process.disconnect()))
      )
    )
  })
}

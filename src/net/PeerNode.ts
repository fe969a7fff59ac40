/**
 * A running node's peer: the libp2p host (loaded here, at start), its heads announced on gossipsub,
 * its journal served as a feed, the feeds it follows copied and verified, and equivocation caught.
 *
 * Heads: whenever the journal's signed head moves (and every few seconds, for peers that just came),
 * the node publishes it on `edge-net/<network>/heads/1`. Every peer checks each head's signature before
 * it is forwarded, and remembers the recent heads of every key: a second head for a position with
 * another hash is a fork proof, published on `edge-net/<network>/forks/1` and kept by every peer.
 *
 * Following: for each followed peer, a fiber pulls the feed from the copy's head on, whenever the peer
 * announces a head past it (and on a timer, should an announcement be lost). Batches are checked
 * before anything is written (events/Replica.ts), so a follower killed mid-stream restarts from the
 * copy's head with no gap and no duplicate. A source that serves a head below one the copy holds has
 * rolled its log back; one whose events no longer extend the copy has rewritten it: either is
 * reported, and the copy keeps what the source signed before.
 */
import { Effect, Either, Fiber, Layer, Queue, Ref, Schedule, Stream } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { BlobStore } from "../content/BlobStore.js"
import { NodeKey } from "../content/NodeKey.js"
import type { ForkProof } from "../events/ForkProof.js"
import * as Proofs from "../events/ForkProof.js"
import { Journal } from "../events/Journal.js"
import type { SignedHead } from "../events/Journal.js"
import type { Replica } from "../events/Replica.js"
import { openReplica, ReplicaRefused } from "../events/Replica.js"
import { makeAdapterPeer } from "./AdapterPeer.js"
import type { BlobAnnouncement } from "./BlobWire.js"
import * as Blobs from "./BlobWire.js"
import type { ForwardedAnswer, ForwardedCommand } from "./CommandWire.js"
import * as Commands from "./CommandWire.js"
import type { FeedRequest } from "./FeedWire.js"
import * as Wire from "./FeedWire.js"
import type { Host } from "./Libp2pHost.js"
import type { BookEntry } from "./PeerBook.js"
import { feedFile, openPeerBook, peerIdOfAddress, peerIdOfPublicKey, publicKeyOfPeerId } from "./PeerBook.js"
import type { FeedView, PeersService, PeerView } from "./Peers.js"
import { bookEntryOf, checkedPeerId, Peers, PeersError } from "./Peers.js"

export interface PeerSettings {
  readonly dataDir: string
  readonly network: string
  /** Multiaddrs to listen on, e.g. `/ip4/127.0.0.1/tcp/7879` and `/ip4/127.0.0.1/tcp/7880/ws`. */
  readonly listen: ReadonlyArray<string>
  /** Multiaddrs (with `/p2p/<id>`) dialled at start. */
  readonly bootstrap: ReadonlyArray<string>
  /** Peer ids whose feeds this node follows, besides those the peer book marks. */
  readonly follow: ReadonlyArray<string>
  /** How often a followed feed is polled when no announcement came (default 5 s). */
  readonly pollIntervalMs?: number | undefined
  /** Where this node serves its blobs over HTTP, announced with them; none, and they are not announced. */
  readonly blobsUrl?: string | undefined
}

const FEED_PAGE = Wire.MAX_FEED_LIMIT
/** Heads remembered per key to catch equivocation: the newest this many positions. */
const HEADS_REMEMBERED = 4_096
const decodeFeedRequest = Wire.wireDecoder(Wire.FeedRequest)
const decodeHead = Wire.wireDecoder(Wire.HeadAnnouncement)
const decodeProof = Wire.wireDecoder(Proofs.ForkProof)
const decodeCommand = Wire.wireDecoder(Commands.ForwardedCommand)
const decodeAnswer = Wire.wireDecoder(Commands.ForwardedAnswer)
const decodeBlobs = Wire.wireDecoder(Blobs.BlobAnnouncement)

interface FollowedFeed {
  readonly peerId: string
  readonly publicKey: string
  readonly replica: Replica
  readonly wake: Queue.Queue<void>
  fibers: ReadonlyArray<Fiber.RuntimeFiber<never>>
  announced: number
  announcedAt: number | null
  status: FeedView["status"]
  problem: string | null
}

const forkProofsFile = (dataDir: string) => path.join(dataDir, "fork-proofs.jsonl")

const readForkProofs = (dataDir: string): Array<ForkProof> => {
  const file = forkProofsFile(dataDir)
  if (!fs.existsSync(file)) return []
  return fs.readFileSync(file, "utf8").split("\n").filter((line) => line !== "").flatMap((line) => {
    const proof = decodeProof(new TextEncoder().encode(line))
    return Either.isRight(proof) && Proofs.forkProofValid(proof.right) ? [proof.right] : []
  })
}

export const peerNodeLayer = (settings: PeerSettings) =>
  Layer.scoped(
    Peers,
    Effect.gen(function*() {
      const key = yield* NodeKey
      const journal = yield* Journal
      const book = yield* openPeerBook(settings.dataDir).pipe(
        Effect.mapError((error) => new PeersError({ message: error.message }))
      )
      const { startHost } = yield* Effect.promise(() => import("./Libp2pHost.js"))
      const headsTopic = `edge-net/${settings.network}/heads/1`
      const forksTopic = `edge-net/${settings.network}/forks/1`
      const blobsTopic = `edge-net/${settings.network}/blobs/1`
      const store = yield* BlobStore
      // What each peer last announced it holds, and when.
      const announcedBlobs = new Map<
        string,
        { readonly url: string; readonly sha256s: ReadonlySet<string>; at: number }
      >()
      const onBlobs = (announcement: BlobAnnouncement, from: string) =>
        announcedBlobs.set(from, { url: announcement.url, sha256s: new Set(announcement.sha256s), at: Date.now() })
      const layerScope = yield* Effect.scope

      // Recent heads of every key seen, by position: the evidence a fork proof is made of.
      const seenHeads = new Map<string, Map<number, SignedHead>>()
      const proofs = new Map<string, ForkProof>()
      for (const proof of readForkProofs(settings.dataDir)) proofs.set(Proofs.forkProofId(proof), proof)
      const feeds = new Map<string, FollowedFeed>()
      // Set once the host is up; a proof found while it starts is published by the next peer to see it.
      const running: { host: Host | undefined } = { host: undefined }
      const adapters = yield* makeAdapterPeer(settings.network, () => running.host)

      const recordProof = (proof: ForkProof, publish: boolean) => {
        const id = Proofs.forkProofId(proof)
        if (proofs.has(id)) return
        proofs.set(id, proof)
        fs.appendFileSync(forkProofsFile(settings.dataDir), `${JSON.stringify(proof)}\n`, { mode: 0o600 })
        for (const feed of feeds.values()) {
          if (feed.publicKey === proof.publicKey) {
            feed.status = "diverged"
            feed.problem =
              `signed two histories: head ${proof.first.position} (${proof.first.hash}) is not on the chain of head ${proof.second.position}`
          }
        }
        if (publish && running.host !== undefined) {
          running.host.publish(forksTopic, Wire.encodeJson(proof)).catch(() => undefined)
        }
      }

      /**
       * What a copy of the key's feed holds against `head`: its own head at that position with another
       * hash, or an event there with another hash and the next head it holds, with the events between.
       */
      const evidenceAgainst = (head: SignedHead): ForkProof | undefined => {
        for (const feed of feeds.values()) {
          if (feed.publicKey !== head.publicKey) continue
          const held = feed.replica.signedHeadFrom(head.position)
          if (held === undefined || held.position - head.position > Proofs.MAX_PROOF_CHAIN) return undefined
          const point = (h: SignedHead) => ({ position: h.position, hash: h.hash, signature: h.signature })
          if (held.position === head.position) {
            return held.hash === head.hash
              ? undefined
              : { publicKey: head.publicKey, first: point(head), second: point(held), chain: [] }
          }
          const chain = feed.replica.records(head.position, held.position)
          return chain[0] === undefined || chain[0].hash === head.hash
            ? undefined
            : { publicKey: head.publicKey, first: point(head), second: point(held), chain }
        }
        return undefined
      }

      /** Remembers a head; another hash for its key and position, seen or held in a copy, is an equivocation. */
      const witness = (head: SignedHead) => {
        let byPosition = seenHeads.get(head.publicKey)
        if (byPosition === undefined) seenHeads.set(head.publicKey, byPosition = new Map())
        const seen = byPosition.get(head.position)
        const proof = seen !== undefined && seen.hash !== head.hash
          ? {
            publicKey: head.publicKey,
            first: { position: head.position, hash: head.hash, signature: head.signature },
            second: { position: seen.position, hash: seen.hash, signature: seen.signature },
            chain: []
          }
          : evidenceAgainst(head)
        if (proof !== undefined && Proofs.forkProofValid(proof)) {
          recordProof(proof, true)
          return
        }
        byPosition.set(head.position, head)
        if (byPosition.size > HEADS_REMEMBERED) byPosition.delete(byPosition.keys().next().value as number)
      }

      const onHead = (head: SignedHead) => {
        witness(head)
        for (const feed of feeds.values()) {
          if (feed.publicKey !== head.publicKey) continue
          if (head.position > feed.announced) {
            feed.announced = head.position
            feed.announcedAt = Date.now()
          }
          if (head.position > feed.replica.head().position) Queue.unsafeOffer(feed.wake, undefined)
        }
      }

      // Forwarded commands are answered by the node's RPC server once it is up (it depends on this layer).
      const intake: { answer: ((command: ForwardedCommand) => Effect.Effect<ForwardedAnswer>) | undefined } = {
        answer: undefined
      }
      const answerForwarded = (bytes: Uint8Array): Promise<Uint8Array> => {
        const command = decodeCommand(bytes)
        const answer = Either.isLeft(command)
          ? Effect.succeed<ForwardedAnswer>({ refused: `bad forwarded command: ${command.left}` })
          : intake.answer === undefined
          ? Effect.succeed<ForwardedAnswer>({ refused: "this node is starting: try again" })
          : intake.answer(command.right)
        return Effect.runPromise(answer).then(Wire.encodeJson)
      }

      const serve = (bytes: Uint8Array): AsyncIterable<Uint8Array> => {
        const request = decodeFeedRequest(bytes)
        if (Either.isLeft(request)) throw new Error(`bad feed request: ${request.left}`)
        return Wire.feedPages(journal, request.right.from)
      }

      const started = yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: () =>
            startHost({
              seed: key.seed,
              publicKey: Buffer.from(key.publicKey, "hex"),
              listen: settings.listen,
              bootstrap: settings.bootstrap,
              topics: [
                {
                  topic: headsTopic,
                  validate: (data) => {
                    const head = decodeHead(data)
                    return Either.isRight(head) && Wire.headSignatureValid(head.right) ? "accept" : "reject"
                  },
                  onMessage: (data) => Either.map(decodeHead(data), onHead)
                },
                {
                  topic: blobsTopic,
                  validate: (data) => Either.isRight(decodeBlobs(data)) ? "accept" : "reject",
                  onMessage: (data, from) =>
                    Either.map(decodeBlobs(data), (announcement) => onBlobs(announcement, from))
                },
                {
                  topic: forksTopic,
                  validate: (data) => {
                    const proof = decodeProof(data)
                    return Either.isRight(proof) && Proofs.forkProofValid(proof.right) ? "accept" : "reject"
                  },
                  onMessage: (data) => Either.map(decodeProof(data), (proof) => recordProof(proof, false))
                },
                ...adapters.topics
              ],
              protocols: [
                {
                  protocol: Commands.COMMAND_PROTOCOL,
                  maxRequestBytes: Commands.MAX_COMMAND_BYTES,
                  handle: answerForwarded
                },
                ...adapters.protocols
              ],
              streamProtocols: [{ protocol: Wire.FEED_PROTOCOL, maxRequestBytes: 1024, serve }]
            }),
          catch: (error) =>
            new PeersError({
              message: `cannot start the node's peer on ${settings.listen.join(", ")}: ${String(error)}`
            })
        }),
        (started) => Effect.promise(() => started.stop())
      )
      running.host = started
      yield* Effect.forkScoped(adapters.announcing)

      // --- following --------------------------------------------------------------------------
      /**
       * Reads the feed from the copy's head on, page after page on one stream (the source reads and
       * sends the next page while this node checks and stores the one before), until the source has no
       * more; stops at the first thing wrong, and says what.
       */
      const catchUp = (feed: FollowedFeed) =>
        Effect.gen(function*() {
          const pages = started.requestStream(
            feed.peerId,
            Wire.FEED_PROTOCOL,
            Wire.encodeJson({ from: feed.replica.head().position + 1, limit: FEED_PAGE } satisfies FeedRequest),
            {
              timeoutMs: 30_000,
              maxMessageBytes: Wire.MAX_FEED_RESPONSE_BYTES,
              decode: Wire.decodeFeedResponse,
              isLast: (page) => Either.isLeft(page) || page.right.records.length === 0
            }
          )[Symbol.asyncIterator]()
          // Leaving early (a refusal, an interruption) aborts the stream, and the source stops sending.
          yield* Effect.addFinalizer(() => Effect.promise(async () => void (await pages.return?.())))
          while (true) {
            const held = feed.replica.lastSignedHead()
            const next = yield* Effect.tryPromise({
              try: () => pages.next(),
              catch: (error) => `cannot fetch: ${error instanceof Error ? error.message : String(error)}`
            })
            if (next.done === true) return
            if (Either.isLeft(next.value)) return yield* Effect.fail(`bad answer: ${next.value.left}`)
            const response = next.value.right
            if (response.head !== null) {
              onHead(response.head)
              if (held !== undefined && response.head.position < held.position) {
                feed.status = "rolled back"
                feed.problem =
                  `serves head ${response.head.position} but signed head ${held.position} (${held.hash}) before: its log was cut back`
                return
              }
            }
            if (response.records.length === 0) return
            const appended = feed.replica.append(response.records, response.heads)
            if (appended instanceof ReplicaRefused) {
              const diverged = appended.position === feed.replica.head().position + 1 &&
                appended.reason.includes("does not link")
              feed.status = diverged ? "diverged" : feed.status
              feed.problem = diverged
                ? `its event ${appended.position} does not extend the copy's head ${
                  held?.position ?? 0
                }: its log was rewritten`
                : appended.message
              return
            }
            for (const head of response.heads) witness(head)
            if (feed.status === "following") feed.problem = null
          }
        }).pipe(Effect.scoped, Effect.catchAll((problem) => Effect.sync(() => (feed.problem = problem))))

      const follow = (peerId: string) =>
        Effect.gen(function*() {
          if (feeds.has(peerId)) return
          const publicKey = publicKeyOfPeerId(peerId)
          if (publicKey === undefined) {
            return yield* Effect.fail(
              new PeersError({ message: `cannot follow ${peerId}: its peer id names no Ed25519 key` })
            )
          }
          fs.mkdirSync(path.dirname(feedFile(settings.dataDir, peerId)), { recursive: true, mode: 0o700 })
          const replica = openReplica(feedFile(settings.dataDir, peerId), publicKey)
          const feed: FollowedFeed = {
            peerId,
            publicKey,
            replica,
            wake: yield* Queue.sliding<void>(1),
            fibers: [],
            announced: replica.head().position,
            announcedAt: null,
            status: "following",
            problem: null
          }
          feeds.set(peerId, feed)
          const poll = Effect.sleep(settings.pollIntervalMs ?? 5_000).pipe(
            Effect.zipRight(Queue.offer(feed.wake, undefined))
          )
          const pull = Effect.zipRight(
            Queue.take(feed.wake),
            Effect.suspend(() => feed.status === "following" ? catchUp(feed) : Effect.void)
          )
          // In the layer's scope: a feed followed from `add` lives as long as the node, not the request.
          feed.fibers = [
            yield* Effect.forkIn(Effect.forever(poll), layerScope),
            yield* Effect.forkIn(Effect.forever(pull), layerScope)
          ]
          yield* Queue.offer(feed.wake, undefined)
        })

      /** A probe that says whether a peer connected since it last looked. */
      const arrivals = () => {
        let known = new Set<string>()
        return () => {
          const now = new Set(started.connected().map((peer) => peer.peerId))
          const arrived = [...now].some((peerId) => !known.has(peerId))
          known = now
          return arrived
        }
      }

      // --- announcing our own head ------------------------------------------------------------
      const lastAnnounced = yield* Ref.make(0)
      const announce = (force: boolean) =>
        Effect.gen(function*() {
          const head = yield* Wire.newestSignedHead(journal)
          if (head === undefined) return
          if (!force && head.position === (yield* Ref.get(lastAnnounced))) return
          yield* Ref.set(lastAnnounced, head.position)
          witness(head)
          yield* Effect.promise(() => started.publish(headsTopic, Wire.encodeJson(head)).catch(() => 0))
        })
      // The head goes out as the journal moves: a subscriber from the head is woken by each commit of
      // this node, and takes what came meanwhile as one page, at most every 50 ms. (Looking for a new
      // head every 50 ms instead kept an idle node allocating 2.5 MB a second.)
      const from = (yield* journal.head).position + 1
      yield* Effect.forkScoped(
        announce(false).pipe(
          Effect.zipRight(
            Stream.runForEachChunk(
              journal.subscribe(from),
              () => announce(false).pipe(Effect.zipRight(Effect.sleep("50 millis")))
            )
          )
        )
      )
      // Besides every move, the head goes out again for peers that connected since (checked every 5 s)
      // and once a minute: re-announcing on a timer alone costs every peer traffic that grows with the
      // network (the simulation's finding, docs/network.md).
      const newcomers = arrivals()
      let ticks = 0
      yield* Effect.forkScoped(
        Effect.repeat(
          Effect.suspend(() => {
            ticks++
            return announce(ticks % 12 === 0 || newcomers())
          }),
          Schedule.spaced("5 seconds")
        )
      )

      // --- announcing the blobs this node holds -------------------------------------------------
      if (settings.blobsUrl !== undefined) {
        const url = settings.blobsUrl
        let last = ""
        let rounds = 0
        const blobNewcomers = arrivals()
        const announceBlobs = Effect.gen(function*() {
          const held = (yield* store.list).sort((a, b) => b.addedAt - a.addedAt).slice(0, Blobs.MAX_ANNOUNCED_BLOBS)
          const sha256s = held.map((blob) => blob.sha256)
          const key = sha256s.join(",")
          // On change, for peers that just came, and every minute to keep the holders' entries fresh.
          if (key === last && ++rounds % 30 !== 0 && !blobNewcomers()) return
          last = key
          rounds = 0
          if (sha256s.length === 0) return
          yield* Effect.promise(() => started.publish(blobsTopic, Wire.encodeJson({ url, sha256s })).catch(() => 0))
        })
        yield* Effect.forkScoped(Effect.repeat(Effect.ignore(announceBlobs), Schedule.spaced("2 seconds")))
      }

      // --- the book and the bootstrap list --------------------------------------------------------
      const dialQuietly = (address: string) =>
        Effect.promise(() => started.dial(address).then(() => undefined, () => undefined))
      yield* Effect.forkScoped(
        Effect.forEach([...book.entries().map((entry) => entry.address)], dialQuietly, { concurrency: 8 })
      )
      const initialFollows = new Set([
        ...settings.follow,
        ...book.entries().filter((e) => e.follow).map((e) => e.peerId)
      ])
      for (const peerId of initialFollows) yield* follow(peerId)

      const bootstrapIds = new Set(settings.bootstrap.map(peerIdOfAddress))
      const viewOf = (peerId: string, entry: BookEntry | undefined): PeerView => {
        const connections = started.connected().filter((peer) => peer.peerId === peerId)
        return {
          peerId,
          addresses: [
            ...new Set([...(entry === undefined ? [] : [entry.address]), ...connections.flatMap((c) => c.addresses)])
          ],
          connected: connections.length > 0,
          source: entry !== undefined ? "book" : bootstrapIds.has(peerId) ? "bootstrap" : "discovered",
          follow: feeds.has(peerId),
          latencyMs: connections[0]?.latencyMs ?? null
        }
      }

      const service: PeersService = {
        adapters: adapters.service,
        view: Effect.sync(() => {
          const entries = new Map(book.entries().map((entry) => [entry.peerId, entry]))
          const ids = new Set([...entries.keys(), ...started.connected().map((peer) => peer.peerId)])
          return {
            peerId: started.peerId,
            listening: started.addresses(),
            peers: [...ids].sort().map((peerId) => viewOf(peerId, entries.get(peerId))),
            feeds: [...feeds.values()].map((feed) => ({
              peerId: feed.peerId,
              publicKey: feed.publicKey,
              position: feed.replica.head().position,
              hash: feed.replica.head().hash,
              announced: feed.announced,
              announcedAt: feed.announcedAt,
              status: feed.status,
              problem: feed.problem
            })),
            forkProofs: [...proofs.values()]
          }
        }),
        forkProofs: Effect.sync(() => [...proofs.values()]),
        add: (address, shouldFollow) =>
          Effect.gen(function*() {
            const entry = yield* bookEntryOf(address, shouldFollow)
            if (entry.peerId === started.peerId) {
              return yield* Effect.fail(new PeersError({ message: `${address} is this node itself` }))
            }
            const reached = yield* Effect.tryPromise({
              try: () => started.dial(entry.address),
              catch: (error) =>
                new PeersError({
                  message: `cannot reach ${address}: ${error instanceof Error ? error.message : String(error)}`
                })
            })
            if (reached !== entry.peerId) {
              return yield* Effect.fail(
                new PeersError({ message: `${address} answered as ${reached}, not ${entry.peerId}` })
              )
            }
            yield* book.put(entry).pipe(Effect.mapError((error) => new PeersError({ message: error.message })))
            if (shouldFollow) yield* follow(entry.peerId)
            return viewOf(entry.peerId, entry)
          }),
        remove: (peerId) =>
          Effect.gen(function*() {
            const checked = yield* checkedPeerId(peerId)
            const feed = feeds.get(checked)
            if (feed !== undefined) {
              feeds.delete(checked)
              yield* Fiber.interruptAll(feed.fibers)
              feed.replica.close()
            }
            const known = yield* book.remove(checked).pipe(
              Effect.mapError((error) => new PeersError({ message: error.message }))
            )
            const connected = started.connected().some((peer) => peer.peerId === checked)
            yield* Effect.promise(() => started.hangUp(checked).catch(() => undefined))
            return known || connected || feed !== undefined
          }),
        forward: (publicKey, command) =>
          Effect.tryPromise({
            try: () =>
              started.request(peerIdOfPublicKey(publicKey), Commands.COMMAND_PROTOCOL, Wire.encodeJson(command), {
                timeoutMs: 30_000,
                maxResponseBytes: Commands.MAX_ANSWER_BYTES
              }),
            catch: (error) => new PeersError({ message: error instanceof Error ? error.message : String(error) })
          }).pipe(
            Effect.flatMap((bytes) =>
              Either.match(decodeAnswer(bytes), {
                onLeft: (problem) => Effect.fail(new PeersError({ message: `bad answer: ${problem}` })),
                onRight: Effect.succeed
              })
            )
          ),
        holders: (sha256) =>
          Effect.sync(() => {
            const fresh = Date.now() - Blobs.HOLDER_TTL_MS
            return [...announcedBlobs.entries()].filter(([, held]) => held.at >= fresh && held.sha256s.has(sha256))
              .map(([peerId, held]) => ({ peerId, url: held.url }))
          }),
        acceptForwarded: (answer) => Effect.sync(() => (intake.answer = answer))
      }
      yield* Effect.addFinalizer(() => Effect.sync(() => feeds.forEach((feed) => feed.replica.close())))
      return service
    }).pipe(Effect.withSpan("PeerNode.start"))
  )

/**
 * The handlers of every RPC group a node serves, on the node's services: the server mounts them at
 * /rpc, and the CLI's direct mode calls them in process, so both modes answer alike.
 */
import { Effect, Layer, Stream } from "effect"
import * as crypto from "node:crypto"
import { AdapterPoolRpcs } from "../actors/adapters/AdapterPoolRpc.js"
import { AdapterPool } from "../actors/adapters/AdapterPoolService.js"
import { Adapters, AdaptersFailure } from "../actors/adapters/Adapters.js"
import { AdapterTraining } from "../actors/adapters/AdapterTraining.js"
import { AdapterTrainingRpcs } from "../actors/adapters/AdapterTrainingRpc.js"
import { EconomyRpcs } from "../actors/economy/EconomyRpc.js"
import { Ledger } from "../actors/economy/Ledger.js"
import { LedgerRpcs } from "../actors/economy/LedgerRpc.js"
import { Reputation } from "../actors/economy/ReputationService.js"
import { Rewards } from "../actors/economy/RewardService.js"
import { Staking } from "../actors/economy/StakeService.js"
import { GovernanceRpcHandlers } from "../actors/governance/GovernanceRpcHandlers.js"
import { LearningRpcHandlers } from "../actors/learning/LearningRpcHandlers.js"
import { MarketRpcHandlers } from "../actors/market/MarketRpcHandlers.js"
import { Market } from "../actors/market/MarketService.js"
import { NetworkCharter } from "../actors/network/CharterService.js"
import { Optimizer } from "../actors/optimizer/Optimizer.js"
import { OptimizerRpcs } from "../actors/optimizer/OptimizerRpc.js"
import { RegistryRpcs } from "../actors/registry/RegistryRpc.js"
import { Registry } from "../actors/registry/RegistryService.js"
import { BlobStore } from "../content/BlobStore.js"
import type { ModelSource } from "../content/ModelSource.js"
import { ModelSourceError } from "../content/ModelSource.js"
import { NodeKey } from "../content/NodeKey.js"
import type { ChainReport } from "../events/Audit.js"
import { Journal } from "../events/Journal.js"
import { NodeAudit } from "../layers/NodeAudit.js"
import { NodeDeadLetters } from "../layers/NodeDeadLetters.js"
import { NodeStatus } from "../layers/NodeStatus.js"
import { Peers } from "../net/Peers.js"
import { AdapterPeersRpcs } from "./AdapterPeersRpc.js"
import { AdaptersRpcs } from "./AdaptersRpc.js"
import { auditCommands } from "./CommandAudit.js"
import { LearningPeerRpcHandlers } from "./LearningPeers.js"
import { loadModel, resolveData, resolveFiles } from "./ModelSources.js"
import { ModelsRpcHandlers } from "./ModelsRpcHandlers.js"
import type { ChainReportView } from "./NodeRpc.js"
import { NodeRpcs } from "./NodeRpc.js"
import { OperatorRpcs } from "./OperatorRpc.js"
import { optimizeJobInChild } from "./OptimizeJob.js"
import { PeersRpcs } from "./PeersRpc.js"

/** The chain's report joined with the audit of every stored command: the first problem of either. */
export const verifyWithCommands = <E, R>(chain: Effect.Effect<ChainReport, E, R>) =>
  Effect.zipWith(chain, auditCommands, (report, commands): ChainReportView => ({
    ...report,
    ok: report.ok && commands.problem === null,
    firstBadPosition: report.firstBadPosition ?? commands.firstBadPosition,
    problem: report.problem ?? commands.problem,
    commandsChecked: commands.commandsChecked,
    ownerEventsChecked: commands.eventsRequiringOwner
  }))

const NodeRpcHandlers = NodeRpcs.toLayer(
  Effect.gen(function*() {
    const status = yield* NodeStatus
    const audit = yield* NodeAudit
    const deadLetters = yield* NodeDeadLetters
    const journal = yield* Journal
    const charter = yield* NetworkCharter
    return {
      NodeInfo: () => status.info(),
      JournalHead: () => status.head,
      AuditVerify: () =>
        verifyWithCommands(audit.verify()).pipe(
          Effect.provideService(Journal, journal),
          Effect.provideService(NetworkCharter, charter)
        ),
      AuditReplay: () => audit.replay(),
      AuditExplain: ({ id, kind }) => audit.explain(kind, id),
      DeadLetterList: ({ limit }) => deadLetters.list(limit),
      DeadLetterRetry: ({ target }) => deadLetters.retry(target),
      DeadLetterClear: ({ target }) => deadLetters.clear(target)
    }
  })
)

const LedgerRpcHandlers = LedgerRpcs.toLayer(
  Effect.gen(function*() {
    const ledger = yield* Ledger
    return {
      LedgerBalance: ({ account }) => ledger.balance(account),
      LedgerMint: ({ account, amount, auth, operationId }) => ledger.mint(account, amount, operationId ?? auth?.id),
      LedgerTransfer: ({ amount, auth, from, to, transferId }) =>
        ledger.transfer(from, to, amount, transferId ?? auth?.id),
      LedgerHold: ({ account, holdId, amount }) => ledger.hold(account, holdId, amount),
      LedgerRelease: ({ account, holdId }) => ledger.release(account, holdId),
      LedgerCapture: ({ account, holdId, to, amount }) => ledger.capture(account, holdId, to, amount)
    }
  })
)

const EconomyRpcHandlers = EconomyRpcs.toLayer(
  Effect.gen(function*() {
    const staking = yield* Staking
    const reputation = yield* Reputation
    const rewards = yield* Rewards
    return {
      Stake: ({ amount, auth, node, operationId }) => staking.stake(node, amount, operationId ?? auth?.id),
      Unbond: ({ amount, auth, node, operationId }) => staking.unbond(node, amount, operationId ?? auth?.id),
      Withdraw: ({ auth, node, operationId }) => staking.withdraw(node, operationId ?? auth?.id),
      Slash: ({ evidence, node, operationId, reason }) => staking.slash(node, reason, evidence, operationId),
      ReportEquivocation: ({ proof }) => staking.slashEquivocation(proof),
      StakeOf: ({ node }) => staking.stakeOf(node),
      ReputationOf: ({ node }) => reputation.reputationOf(node),
      RewardsOf: ({ node }) => rewards.pending(node),
      ClaimReward: ({ node, rewardId }) => rewards.claim(node, rewardId)
    }
  })
)

const RegistryRpcHandlers = RegistryRpcs.toLayer(
  Effect.gen(function*() {
    const registry = yield* Registry
    return {
      RegistryList: (filter) => registry.list(filter),
      RegistryGet: ({ id, kind, version }) => registry.get(id, version, kind),
      RegistryVersions: ({ id, kind }) => registry.versions(id, kind),
      RegistryPublish: ({ allowOlder, manifest }) => registry.publish(manifest, { allowOlder, kind: "model" }),
      RegistryYank: ({ auth: _, ...request }) => registry.yank(request),
      AdapterList: (filter) => registry.listAdapters(filter),
      AdapterPublish: ({ allowOlder, manifest }) => registry.publishAdapter(manifest, { allowOlder })
    }
  })
)

const OperatorRpcHandlers = OperatorRpcs.toLayer(
  Effect.gen(function*() {
    const market = yield* Market
    return {
      MarketIssueCompute: ({ node, operationId, units }) => market.issueCompute(node, units, operationId)
    }
  })
)

const AdapterPoolRpcHandlers = AdapterPoolRpcs.toLayer(
  Effect.gen(function*() {
    const pool = yield* AdapterPool
    return {
      PoolState: () => pool.state(),
      PoolLoad: ({ auth: _, ...adapter }) => pool.load(adapter),
      PoolUse: ({ key }) => pool.use(key),
      PoolPin: ({ key }) => pool.pin(key),
      PoolUnpin: ({ key }) => pool.unpin(key),
      PoolUnload: ({ key }) => pool.unload(key),
      PoolConfigure: ({ auth: _, ...limits }) => pool.configure(limits),
      PoolSelect: ({ embedding }) => pool.select(embedding)
    }
  })
)

const PeersRpcHandlers = PeersRpcs.toLayer(
  Effect.gen(function*() {
    const peers = yield* Peers
    return {
      PeersList: () => peers.view,
      PeersAdd: ({ address, follow }) => peers.add(address, follow),
      PeersRemove: ({ peerId }) => peers.remove(peerId)
    }
  })
)

const AdapterPeersRpcHandlers = AdapterPeersRpcs.toLayer(
  Effect.gen(function*() {
    const { adapters } = yield* Peers
    return {
      AdapterPeersList: () => adapters.view,
      AdapterPeersPull: ({ id, version }) => adapters.pull(id, version),
      AdapterPeersReport: ({ report }) => adapters.report(report)
    }
  })
)

/** The model a job works on, resolved with the node's store and registry. */
const sourcesOn = Effect.gen(function*() {
  const store = yield* BlobStore
  const registry = yield* Registry
  const files = (source: ModelSource) =>
    resolveFiles(source).pipe(Effect.provideService(BlobStore, store), Effect.provideService(Registry, registry))
  return {
    store,
    files,
    model: (source: ModelSource) =>
      Effect.flatMap(files(source), (found) => Effect.provideService(loadModel(found), BlobStore, store)),
    data: (source: Parameters<typeof resolveData>[0]) =>
      resolveData(source).pipe(Effect.provideService(BlobStore, store))
  }
})

const OptimizerRpcHandlers = OptimizerRpcs.toLayer(
  Effect.gen(function*() {
    const optimizer = yield* Optimizer
    const sources = yield* sourcesOn
    return {
      OptimizerRun: ({ calibrationTexts, model, settings }) =>
        Stream.unwrap(Effect.gen(function*() {
          const files = yield* sources.files(model)
          if (calibrationTexts !== undefined && files.tokenizer === undefined) {
            return yield* Effect.fail(
              new ModelSourceError({ reason: `calibration texts need the model's tokenizer.json (name it as a blob)` })
            )
          }
          const texts = calibrationTexts ?? []
          return optimizeJobInChild(optimizer, {
            jobId: `optimize-${crypto.randomBytes(6).toString("hex")}`,
            files,
            settings,
            calibrationTexts: texts,
            ...(texts.length === 0 ? {} : {
              calibration: {
                sha256: crypto.createHash("sha256").update(JSON.stringify(texts)).digest("hex"),
                samples: texts.length
              }
            }),
            blobs: { root: sources.store.root, maxBytes: sources.store.maxBytes }
          })
        }))
    }
  })
)

const AdapterTrainingRpcHandlers = AdapterTrainingRpcs.toLayer(
  Effect.gen(function*() {
    const training = yield* AdapterTraining
    const sources = yield* sourcesOn
    return {
      AdapterTrain: ({ adapter, base, data, settings, task }) =>
        Stream.unwrap(Effect.gen(function*() {
          const model = yield* sources.model(base)
          if (model.tokenizer === undefined) {
            return yield* Effect.fail(
              new ModelSourceError({ reason: `training needs the model's tokenizer.json (name it as a blob)` })
            )
          }
          const { heldOut, maxTokens, targetModules, window, ...config } = settings
          return training.trainStream({
            base: {
              bytes: model.bytes,
              tokenizer: model.tokenizer,
              id: model.id,
              baseModelDigest: model.baseModelDigest
            },
            data: yield* sources.data(data),
            task,
            config,
            targetNames: targetModules,
            dataOptions: {
              ...(window === undefined ? {} : { windowLength: window }),
              ...(maxTokens === undefined ? {} : { maxTokens }),
              ...(heldOut === undefined ? {} : { heldOutFraction: heldOut })
            },
            adapter,
            storeRoot: sources.store.root
          })
        }))
    }
  })
)

const AdaptersRpcHandlers = AdaptersRpcs.toLayer(
  Effect.gen(function*() {
    const adapters = yield* Adapters
    const registry = yield* Registry
    const key = yield* NodeKey
    const sources = yield* sourcesOn
    const signer = { keyId: key.nodeId, publicKey: key.publicKey, sign: (message: string) => key.sign(message) }
    return {
      AdaptersStored: (filter) => adapters.list(filter),
      AdapterMerge: ({ adapter, adapters: inputs, alpha, rank, spec }) =>
        adapters.merge({ adapters: inputs, spec, adapter, rank, alpha }),
      AdapterImport: ({ document }) => adapters.importDocument(document),
      AdapterImportPeft: ({ adapter, base, baseModelId, config, weights }) =>
        Effect.gen(function*() {
          const model = yield* sources.model(base)
          const parsed = yield* Effect.try({
            try: (): unknown => JSON.parse(config),
            catch: () => new AdaptersFailure({ reason: "adapter_config.json is not JSON" })
          })
          return yield* adapters.importPeft({
            config: parsed,
            weights,
            base: { id: baseModelId ?? model.id, bytes: model.bytes },
            adapter
          })
        }),
      AdapterExport: ({ format, id, version }) =>
        format === "json"
          ? Effect.map(adapters.exportDocument({ id, version }), ({ metadata, text }) => ({
            _tag: "AdapterDocument" as const,
            adapter: metadata,
            document: text
          }))
          : Effect.map(adapters.exportPeft({ id, version }), ({ config, metadata, weights }) => ({
            _tag: "PeftFiles" as const,
            adapter: metadata,
            config: JSON.stringify(config, null, 2) + "\n",
            weights
          })),
      AdapterShare: ({ domain, id, quality, version }) =>
        Effect.flatMap(
          adapters.shareManifest({ id, version, domain, quality }, signer),
          (manifest) => registry.publishAdapter(manifest)
        )
    }
  })
)

export const NodeApiRpcHandlers = Layer.mergeAll(
  AdaptersRpcHandlers,
  ModelsRpcHandlers,
  LearningRpcHandlers,
  LearningPeerRpcHandlers,
  OptimizerRpcHandlers,
  AdapterTrainingRpcHandlers,
  PeersRpcHandlers,
  AdapterPeersRpcHandlers,
  AdapterPoolRpcHandlers,
  OperatorRpcHandlers,
  NodeRpcHandlers,
  LedgerRpcHandlers,
  RegistryRpcHandlers,
  EconomyRpcHandlers,
  MarketRpcHandlers,
  GovernanceRpcHandlers
)

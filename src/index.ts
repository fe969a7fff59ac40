/**
 * edge-net: the node of a peer-to-peer edge AI network, as Effect services and layers.
 *
 * This root entry holds what most programs compose: the SDK (`ModelLoader`, `InferenceSession`, and
 * `ModelWorkers` on worker threads), the inference service, the services that do a node's work
 * (`Optimizer`, `AdapterTraining`, `Adapters`, `Models`, `Registry`), and a whole node's layers. The rest is grouped by
 * subsystem:
 *
 * - `edge-net/events`: the event kernel (journal, actors, snapshots, audit);
 * - `edge-net/compute`: inference, optimization, quantization, LoRA adapters, tokenizers;
 * - `edge-net/models`: manifests, the blob store, pulling, publishing, trust;
 * - `edge-net/economy`: ledger, stake, reputation, rewards, market, auctions, governance;
 * - `edge-net/rpc`: calling a node over RPC with signed commands;
 * - `edge-net/promise`: the SDK for programs that do not use Effect.
 *
 * @packageDocumentation
 * @module edge-net
 */
export { Adapters, AdaptersFailure, MergeSpec } from "./actors/adapters/Adapters.js"
export type { AdapterRef, MergeRequest, NewAdapter, PeftImport, ShareRequest } from "./actors/adapters/Adapters.js"
export { AdapterTraining, AdapterTrainingFailed, TrainingProgressEvent } from "./actors/adapters/AdapterTraining.js"
export type { TrainOutcome, TrainRequest } from "./actors/adapters/AdapterTraining.js"
export { TrainSettings } from "./actors/adapters/AdapterTrainingRpc.js"
export { Optimizer } from "./actors/optimizer/Optimizer.js"
export type { OptimizeOutcome, OptimizeRequest } from "./actors/optimizer/Optimizer.js"
export { OptimizeProgress, OptimizeRunFailed, OptimizeSettings } from "./actors/optimizer/OptimizeRun.js"
export { Registry } from "./actors/registry/RegistryService.js"
export { Inference } from "./compute/inference/Inference.js"
export type { ChatMessage, GenerateOptions, GenerateResult, InferenceService } from "./compute/inference/Inference.js"
export { InferenceInputError, InferenceRunError, ModelLoadError } from "./compute/inference/InferenceError.js"
export { randomFeedSets, sampleFeedSets, textFeedSets } from "./compute/optimize/Feeds.js"
export type { FeedSets } from "./compute/optimize/Feeds.js"
export { ModelPullEvent, Models, ModelsFailure, PullReceiptView, VerifyReport } from "./content/Models.js"
export { listAdapters, listModels } from "./http/RegistryClient.js"
export { nodeLive } from "./http/Server.js"
export { memoryKernel, sqliteKernel } from "./layers/Kernel.js"
export { feedServices, nodeServices } from "./layers/Node.js"
export { DEFAULT_NETWORK, DEFAULT_PORT, NodeConfig } from "./layers/NodeConfig.js"
export type { NodeSettings } from "./layers/NodeConfig.js"
export * as InferenceSession from "./sdk/InferenceSession.js"
export {
  cacheCatalog,
  makeModelLoader,
  ModelLoader,
  ModelLoaderError,
  modelSourceOf,
  parseModelReference
} from "./sdk/ModelLoader.js"
export type {
  CachedModel,
  ClearReport,
  CompatibilityReport,
  EvictionPolicy,
  LoadedModel,
  LoadOptions,
  LoadProgress,
  ModelCatalog,
  ModelLoaderOptions,
  ModelLoaderService,
  ResidentModel
} from "./sdk/ModelLoader.js"
export type {
  ModelChoice,
  ModelWorkerOptions,
  WorkerGenerateConfig,
  WorkerLoadOptions,
  WorkerModel,
  WorkerStats
} from "./sdk/ModelWorker.js"
export type { ModelWorkerPoolOptions } from "./sdk/ModelWorkerPool.js"
export { ModelWorkerError } from "./sdk/ModelWorkerProtocol.js"
export { makeModelWorkers, ModelWorkers } from "./sdk/ModelWorkerService.js"
export type { ModelWorkersOptions, ModelWorkersService } from "./sdk/ModelWorkerService.js"
export { registryCatalog } from "./sdk/RegistryCatalog.js"
export { SessionTrainingError } from "./sdk/SessionTrainer.js"
export type { SaveOptions, Trainer, TrainerConfig, TrainingExample, TrainSummary } from "./sdk/SessionTrainer.js"

/**
 * edge-net in a web page (`/ui/sdk.js` on every node): pull models into an IndexedDB cache, verified
 * against their signed manifests; run them on onnxruntime-web; train LoRA adapters in a Web Worker,
 * keep them in IndexedDB and run them again.
 */
export { AdapterStore, AdapterStoreError, type SavedAdapter } from "./AdapterStore.js"
export { BlobCacheError, type CachedModel } from "./BlobCache.js"
export {
  type EmbedConfig,
  type GenerateConfig,
  InferenceSession,
  InferenceSessionError,
  type SessionOptions
} from "./InferenceSession.js"
export {
  type LoadedModel,
  type LoadProgress,
  ModelLoader,
  ModelLoaderError,
  type ModelLoaderOptions
} from "./ModelLoader.js"
export { type BackendChoice, hasWebGpu } from "./Ort.js"
export { checkSignatures, type SignatureCheck } from "./Signatures.js"
export {
  trainAdapter,
  type TrainedAdapter,
  type TrainingProgress,
  TrainingRunError,
  type TrainingTexts,
  type TrainOptions
} from "./Training.js"
export { sha256Hex } from "./Verify.js"
export { WorkerSession, type WorkerSessionOptions } from "./WorkerSession.js"

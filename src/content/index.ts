/**
 * Model distribution: signed manifests (`ModelManifest`), the content-addressed blob store, pulls from
 * a registry, CDNs, IPFS gateways and peers, publishing, the trust store and the models config.
 *
 * @packageDocumentation
 * @module edge-net/models
 */
export {
  BlobMismatch,
  BlobNotFound,
  BlobStore,
  BlobStoreError,
  BlobStoreFull,
  BlobTooLarge,
  digestOf
} from "./BlobStore.js"
export type { BlobInfo, BlobStoreOptions, BlobStoreService } from "./BlobStore.js"
export { listManifests, LocalModelError, readManifest, saveManifest } from "./LocalModels.js"
export {
  compareVersions,
  KnownModelTypes,
  MANIFEST_SCHEMA_URL,
  manifestDigest,
  ManifestError,
  ModelManifest,
  parseManifest,
  parseManifestText,
  Quantization,
  Requirements,
  signedBody
} from "./Manifest.js"
export type { AdapterInfo, ArtifactEntry, Benchmarks, Optimization } from "./Manifest.js"
export { ManifestRejected, signAsPublisher, signManifest, trustPolicy, verifyManifest } from "./ManifestSigning.js"
export type { ManifestSigner, RejectionReason, TrustPolicy, VerifiedManifest } from "./ManifestSigning.js"
export { ModelPullEvent, Models, ModelsFailure, PullReceiptView, VerifyReport } from "./Models.js"
export {
  cacheDirectory,
  ConfigError,
  configFile,
  defaultConfig,
  keysDirectory,
  loadConfig,
  ModelsConfigSchema,
  setConfig
} from "./ModelsConfig.js"
export type { ModelsConfig, SourceKind } from "./ModelsConfig.js"
export { generateKeyPair, keyPairFromSeed, NodeKey, NodeKeyError } from "./NodeKey.js"
export type { NodeKeyPair } from "./NodeKey.js"
export { buildManifest, buildManifestFromDraft, idFromName, PublishError, pushToRegistry } from "./Publish.js"
export type { PublishRequest, StoredArtifact } from "./Publish.js"
export { pull, PullError } from "./Pull.js"
export type { PulledArtifact, PullReceipt, PullRequest } from "./Pull.js"
export { sha256 } from "./Sha256.js"
export { signerFromKeyText, TrustStore, TrustStoreError } from "./TrustStore.js"
export type { TrustedKey } from "./TrustStore.js"

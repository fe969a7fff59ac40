/**
 * The compute layer: inference on ONNX Runtime (node or web), the optimization pipeline and its
 * quantizers, LoRA adapters (files, merging, graph branches, training), ONNX models and tokenizers.
 *
 * @packageDocumentation
 * @module edge-net/compute
 */
export { Inference, makeInference } from "./inference/Inference.js"
export type {
  ChatMessage,
  ChatOptions,
  EmbedOptions,
  GenerateOptions,
  GenerateResult,
  InferenceService
} from "./inference/Inference.js"
export { InferenceInputError, InferenceRunError, ModelLoadError } from "./inference/InferenceError.js"
export type { ModelHandle, ModelSource } from "./inference/Model.js"
export { readModelFolder } from "./inference/ModelFolder.js"
export { cosineSimilarity, l2Normalize } from "./inference/Pooling.js"
export type { AdapterMetadata, LoraModule, LoraWeights } from "./lora/Adapter.js"
export { scaleOf } from "./lora/Adapter.js"
export { AdapterFileError, loadAdapter, saveAdapter, signAdapter, verifyAdapterSignature } from "./lora/AdapterFile.js"
export type { Adapter, AdapterDescription, SaveAdapterOptions, VerifyAdapterOptions } from "./lora/AdapterFile.js"
export { adapterLayout, injectAdapterInputs, loraTargets, mergeAdapter } from "./lora/GraphLora.js"
export type { AdapterLayout, LoraTarget } from "./lora/GraphLora.js"
export { listLocalAdapters, loadLocalAdapter, LocalAdapterError, saveLocalAdapter } from "./lora/LocalAdapters.js"
export { mergeAdapters, mergeDeltas, MergeError } from "./lora/Merge.js"
export type { MergedAdapter, MergeMethod, MergeReport } from "./lora/Merge.js"
export { exportPeft, importPeft, PeftError } from "./lora/Peft.js"
export type { MicroLoRAConfig } from "./lora/train/TrainingConfig.js"
export { trainInWorker } from "./lora/train/TrainInWorker.js"
export { OnnxError, readModel, writeModel } from "./onnx/OnnxModel.js"
export type { OnnxGraph, OnnxModel, OnnxNode, OnnxTensor } from "./onnx/OnnxModel.js"
export { manifestReport } from "./optimize/ManifestReport.js"
export { isCausalLanguageModel, optimize, OptimizeError } from "./optimize/Optimize.js"
export type { OptimizeOptions, OptimizeResult, QualityReport, Quantization } from "./optimize/Optimize.js"
export { assignPrecision } from "./quantize/AutoPrecision.js"
export { quantizeInt4Awq } from "./quantize/Awq.js"
export { quantizeInt4Gptq } from "./quantize/Gptq.js"
export { dequantizeInt4, quantizeInt4Rtn } from "./quantize/Int4.js"
export { dequantizeInt8PerChannel, quantizeInt8PerChannel, quantizeInt8PerTensor } from "./quantize/Int8.js"
export { pruneBlocks, pruneMagnitude, sparsityOf } from "./quantize/Prune.js"
export { Tokenizer } from "./tokenizer/Tokenizer.js"
export type { DecodeOptions, EncodeOptions, Encoding } from "./tokenizer/Tokenizer.js"
export { tokenizerFromFile } from "./tokenizer/TokenizerFile.js"

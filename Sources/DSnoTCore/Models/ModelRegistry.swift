// SPDX-License-Identifier: Apache-2.0
// ModelRegistry: opens a checkpoint as a DecoderModel by dispatching on config.json's model_type.

public import Foundation
import SafeTensors

/// Dispatches `config.json`'s `model_type` to an architecture.
///
/// ```swift
/// let model = try ModelRegistry.load(directory: "/models/SmolLM2-135M")   // config.json + model.safetensors
/// print(model.modelType, model.blockCount)
/// ```
public enum ModelRegistry {
    /// Every supported `model_type` (SmolLM2, Vicuna and LLaMA-1/2/3 are `llama`; `gemma3` is Gemma 3 ≥ 4B,
    /// multimodal, of which the engine runs and prunes the language model).
    public static let supportedModelTypes =
        LlamaConfiguration.modelTypes + GemmaConfiguration.modelTypes + Gemma3MultimodalConfiguration.modelTypes
        + Phi3Configuration.modelTypes + MoEConfiguration.modelTypes + OPTConfiguration.modelTypes

    /// Builds the model described by `config` over `tensors`.
    /// - Parameters:
    ///   - config: the bytes of `config.json`.
    ///   - path: where they came from, for messages.
    /// - Throws: `ModelLoadError` (unknown `model_type` lists `supportedModelTypes`).
    public static func model(config: Data, path: String = "config.json", tensors: any TensorSource) throws
        -> any DecoderModel
    {
        let type = try ConfigDecoding.modelType(in: config, path: path)
        if LlamaConfiguration.modelTypes.contains(type) {
            return try LlamaModel(configuration: LlamaConfiguration(json: config, path: path), tensors: tensors)
        }
        if GemmaConfiguration.modelTypes.contains(type) {
            return try GemmaModel(configuration: GemmaConfiguration(json: config, path: path), tensors: tensors)
        }
        if Gemma3MultimodalConfiguration.modelTypes.contains(type) {
            return try GemmaModel(
                multimodal: Gemma3MultimodalConfiguration(json: config, path: path),
                tensors: tensors
            )
        }
        if Phi3Configuration.modelTypes.contains(type) {
            return try Phi3Model(configuration: Phi3Configuration(json: config, path: path), tensors: tensors)
        }
        if MoEConfiguration.modelTypes.contains(type) {
            return try MoEModel(configuration: MoEConfiguration(json: config, path: path), tensors: tensors)
        }
        if OPTConfiguration.modelTypes.contains(type) {
            return try OPTModel(configuration: OPTConfiguration(json: config, path: path), tensors: tensors)
        }
        throw ModelLoadError.unknownModelType(type, supported: supportedModelTypes)
    }

    /// Opens `<directory>/config.json` and the directory's safetensors (single file or sharded with an index).
    /// - Throws: `ModelLoadError`, or `SafeTensorsError` for an unreadable or invalid safetensors file.
    public static func load(directory: String) throws -> any DecoderModel {
        let (data, configPath) = try readConfig(directory: directory)
        return try model(config: data, path: configPath, tensors: try Checkpoint(directory: directory))
    }

    /// Opens `<directory>/config.json` over tensors that come from elsewhere (a sparse output
    /// decoded on demand, an overlay of pruned weights).
    /// - Throws: `ModelLoadError`.
    public static func load(directory: String, tensors: any TensorSource) throws -> any DecoderModel {
        let (data, configPath) = try readConfig(directory: directory)
        return try model(config: data, path: configPath, tensors: tensors)
    }

    private static func readConfig(directory: String) throws -> (Data, String) {
        let configPath = (directory as NSString).appendingPathComponent("config.json")
        do {
            return (try Data(contentsOf: URL(fileURLWithPath: configPath)), configPath)
        } catch {
            throw ModelLoadError.unreadableConfig(path: configPath, reason: "\(error.localizedDescription)")
        }
    }
}

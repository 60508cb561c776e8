// SPDX-License-Identifier: Apache-2.0
// ModelLoadError: every way a checkpoint (config.json + tensors) or a model input is rejected.

/// Why a checkpoint could not be loaded as a model, or why an input to a loaded model was refused.
///
/// Checkpoints are hostile input: every case says what was wrong, where, what was expected and
/// what was found. Nothing in the model loader traps on file contents.
public enum ModelLoadError: Error, Equatable, Sendable, CustomStringConvertible {
    /// `config.json` could not be read.
    case unreadableConfig(path: String, reason: String)
    /// `config.json` is not valid JSON or a key has the wrong type.
    case invalidConfig(path: String, reason: String)
    /// `model_type` names an architecture this engine does not implement.
    case unknownModelType(String, supported: [String])
    /// A config option has a value this engine does not implement.
    case unsupportedOption(key: String, value: String, supported: [String])
    /// A config value is out of range or inconsistent with another one.
    case invalidValue(key: String, value: String, expected: String)
    /// A tensor the architecture needs is not in the checkpoint.
    case missingTensor(name: String, source: String)
    /// A tensor has a shape other than the config implies.
    case shapeMismatch(tensor: String, expected: [Int], got: [Int])
    /// A tensor is not a floating-point type.
    case unsupportedDType(tensor: String, dtype: String)
    /// A tensor holds NaN or ±Inf.
    case nonFiniteWeight(tensor: String, index: Int, value: Float)
    /// The tensors contradict the config in a way no single tensor shows (e.g. extra blocks).
    case configContradictsTensors(reason: String)
    /// A token id is outside `[0, vocabularySize)`.
    case tokenOutOfRange(token: Int, position: Int, vocabularySize: Int)
    /// A sequence is longer than the architecture can position (OPT's learned positions).
    case sequenceTooLong(length: Int, maximum: Int)
    /// A block index outside `[0, blockCount)`.
    case blockOutOfRange(index: Int, blockCount: Int)

    /// The same error with its config key read inside the object `prefix` names (`text_config.` +
    /// `hidden_size`), for a configuration decoded from a nested object. Other cases are unchanged.
    public func nested(in prefix: String) -> ModelLoadError {
        switch self {
        case .unsupportedOption(let key, let value, let supported):
            .unsupportedOption(key: prefix + key, value: value, supported: supported)
        case .invalidValue(let key, let value, let expected):
            .invalidValue(key: prefix + key, value: value, expected: expected)
        default:
            self
        }
    }

    public var description: String {
        switch self {
        case .unreadableConfig(let path, let reason):
            "\(path): cannot read config: \(reason)"
        case .invalidConfig(let path, let reason):
            "\(path): invalid config: \(reason)"
        case .unknownModelType(let type, let supported):
            "unknown model_type '\(type)' (supported: \(supported.joined(separator: ", ")))"
        case .unsupportedOption(let key, let value, let supported):
            "config '\(key)' = \(value) is not supported (supported: \(supported.joined(separator: ", ")))"
        case .invalidValue(let key, let value, let expected):
            "config '\(key)' = \(value) is invalid: expected \(expected)"
        case .missingTensor(let name, let source):
            "\(source): tensor '\(name)' is missing"
        case .shapeMismatch(let tensor, let expected, let got):
            "tensor '\(tensor)': expected shape \(expected) from the config, checkpoint has \(got)"
        case .unsupportedDType(let tensor, let dtype):
            "tensor '\(tensor)': dtype \(dtype) is not a floating-point type (expected F32, F16, BF16 or F64)"
        case .nonFiniteWeight(let tensor, let index, let value):
            "tensor '\(tensor)': element \(index) is \(value) (weights must be finite)"
        case .configContradictsTensors(let reason):
            "config contradicts the checkpoint: \(reason)"
        case .tokenOutOfRange(let token, let position, let vocabularySize):
            "token \(token) at position \(position) is outside the vocabulary [0, \(vocabularySize))"
        case .sequenceTooLong(let length, let maximum):
            "sequence of \(length) tokens exceeds the model's \(maximum) positions"
        case .blockOutOfRange(let index, let blockCount):
            "block \(index) does not exist (the model has \(blockCount) blocks)"
        }
    }
}

import Foundation

/// Why a model could not be loaded.
public enum ModelError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Missing or unreadable file.
    case unreadable(path: String)
    /// Not a model file this build reads.
    case malformed(path: String, reason: String)
    /// A format version from a newer build.
    case unsupportedVersion(path: String, version: Int)
    /// Neither a bundled model's name nor a file.
    case unknownModel(String)

    public var description: String {
        switch self {
        case .unreadable(let path): "\(path): cannot be read"
        case .malformed(let path, let reason): "\(path): not an Obscura model: \(reason)"
        case .unsupportedVersion(let path, let version): "\(path): model format version \(version) is newer than this build reads (1)"
        case .unknownModel(let name): "'\(name)' is neither a bundled model (see `obscura models`) nor a model file"
        }
    }
}

/// A model file: JSON, versioned, with what the model is, how it was trained and evaluated,
/// and its parameters. Format version 1 holds one architecture, the binarized perceptron.
public struct ModelFile: Codable, Sendable, Equatable {
    /// The format version this build writes and reads.
    public static let currentVersion = 1

    /// The format version of this file.
    public var formatVersion: Int
    /// The model's name.
    public var name: String
    /// What it predicts.
    public var task: String
    /// The dataset and split it was trained and evaluated on.
    public var dataset: String
    /// The training and evaluation split, in words.
    public var split: String
    /// The architecture, in words.
    public var architecture: String
    /// Accuracy of the float model on the evaluation split.
    public var floatAccuracy: Double
    /// Accuracy of the exact integer reference on the evaluation split.
    public var integerAccuracy: Double
    /// The parameters.
    public var perceptron: BinarizedPerceptron

    /// Reads a model file.
    public static func load(path: String) throws(ModelError) -> ModelFile {
        guard let data = FileManager.default.contents(atPath: path) else { throw .unreadable(path: path) }
        let model: ModelFile
        do {
            if let version = try? JSONDecoder().decode(VersionProbe.self, from: data).formatVersion, version > currentVersion {
                throw ModelError.unsupportedVersion(path: path, version: version)
            }
            model = try JSONDecoder().decode(ModelFile.self, from: data)
        } catch let error as ModelError {
            throw error
        } catch {
            throw .malformed(path: path, reason: Self.describe(error))
        }
        let p = model.perceptron
        guard p.featureMeans.count == p.featureCount, p.featureDeviations.count == p.featureCount,
              p.weightSigns.allSatisfy({ $0 == 1 || $0 == -1 }), p.alpha > 0,
              p.featureDeviations.allSatisfy({ $0 > 0 }) else {
            throw .malformed(path: path, reason: "inconsistent perceptron parameters")
        }
        return model
    }

    /// Writes the model as pretty-printed JSON.
    public func save(path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: URL(fileURLWithPath: path))
    }

    private struct VersionProbe: Decodable { let formatVersion: Int }

    private static func describe(_ error: Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _): "missing field '\(key.stringValue)'"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            "wrong type at '\(context.codingPath.map(\.stringValue).joined(separator: "."))'"
        case DecodingError.dataCorrupted: "not valid JSON"
        default: "\(error)"
        }
    }
}

/// The models that ship with Obscura, each reproducible by `obscura train NAME`.
public enum ModelCatalog {
    /// Bundled model names.
    public static let names = ["paper-perceptron-cancer"]

    /// A bundled model by name, or a model file by path.
    public static func load(_ nameOrPath: String) throws(ModelError) -> ModelFile {
        if names.contains(nameOrPath) {
            guard let url = Bundle.module.url(forResource: nameOrPath, withExtension: "json") else {
                throw .unreadable(path: "bundled \(nameOrPath).json")
            }
            return try ModelFile.load(path: url.path)
        }
        guard FileManager.default.fileExists(atPath: nameOrPath) else { throw .unknownModel(nameOrPath) }
        return try ModelFile.load(path: nameOrPath)
    }

    /// Trains a bundled model from its dataset folder with its fixed seed and split.
    public static func train(_ name: String, dataFolder: String,
                             progress: (Int, Double, Double) -> Void = { _, _, _ in }) throws -> ModelFile {
        guard name == "paper-perceptron-cancer" else { throw ModelError.unknownModel(name) }
        let data = try Dataset.breastCancer(folder: dataFolder)
        let split = Dataset.breastCancerSplit()
        let model = BinarizedPerceptron.train(on: data, samples: split.train, progress: progress)
        return ModelFile(formatVersion: ModelFile.currentVersion, name: name,
                         task: "binary classification (0 malignant, 1 benign)",
                         dataset: "Wisconsin diagnostic breast cancer (569 records, 30 features)",
                         split: "train 454 / test 115 records, seeded shuffle (Dataset.breastCancerSplit)",
                         architecture: "Batchnorm + Binactive (client) → binarized dense 30 → 1 with α, bias → sign",
                         floatAccuracy: model.accuracy(on: data, samples: split.test, integer: false),
                         integerAccuracy: model.accuracy(on: data, samples: split.test, integer: true),
                         perceptron: model)
    }
}

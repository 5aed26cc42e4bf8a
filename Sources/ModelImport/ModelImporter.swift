import Foundation
import NeuralNet

/// An ONNX network turned into a model file: read, quantized post-training with calibration
/// records, and measured on the dataset's evaluation split.
public struct ModelImporter: Sendable {
    /// What an import produced and measured.
    public struct Result: Sendable {
        /// The model file (format 3), with its float and integer accuracies on the evaluation split.
        public let model: ModelFile
        /// The network as read.
        public let imported: ImportedNetwork
        /// The quantization chosen, and each candidate's integer accuracy on the calibration
        /// records (with the share of them on which it makes the float network's decision); nil and
        /// empty for a quantization-aware network, whose integers are its own.
        public let quantization: PolynomialQuantization?
        public let calibration: [(weightBits: Int, accuracy: Double, agreement: Double)]
        /// The float network's accuracy on the calibration records.
        public let calibrationFloatAccuracy: Double
        /// For a float ReLU network, rewritten for sign bootstraps: the rewrite chosen and what
        /// each stage of it costs in accuracy.
        public let signForm: SignFormReport?
    }

    /// Weight widths tried, narrowest first: narrower weights need smaller plaintext moduli.
    public static let weightBitCandidates = [7, 8, 10, 12]

    /// The integer form may lose at most this much accuracy to the float network on the
    /// calibration records; otherwise the widest candidate is kept and the loss reported.
    public static let accuracyLossAllowed = 0.005


    /// A float ReLU network rewritten for sign bootstraps may lose this much on the
    /// calibration records (binarizing the input alone costs MNIST networks about half a point);
    /// the fewest levels within it are chosen.
    public static let signFormLossAllowed = 0.0075

    /// Imports the ONNX file at `path` as `name`, trained on `datasetKind`'s data, and measures
    /// it on `evaluation`: a quantization-aware network as it is; a float ReLU network rewritten
    /// for sign bootstraps (``ImportedNetwork/signForm(calibration:allowedLoss:)``); a polynomial
    /// network with the narrowest weights whose integer form keeps the float network's accuracy
    /// on the `calibration` records (taken from the training split).
    public static func importONNX(path: String, name: String, datasetKind: DatasetKind, calibration: Dataset,
                                  evaluation: Dataset) throws -> Result {
        guard let bytes = FileManager.default.contents(atPath: path) else { throw ModelError.unreadable(path: path) }
        let imported = try ONNXImporter.read(bytes)
        guard imported.inputShape.count == calibration.sampleSize else {
            throw ImportError.malformed("the network reads \(imported.inputShape.count) values per record; \(calibration.name) records have \(calibration.sampleSize)")
        }
        func file(_ network: ModelFile.Network, data: Dataset) -> ModelFile {
            ModelFile(name: name, task: "\(imported.layers.count)-layer network imported from ONNX", datasetKind: datasetKind,
                      dataset: data.name, architecture: "ONNX " + imported.operators.joined(separator: " → "), network: network,
                      evaluationData: data)
        }
        if imported.carriesItsIntegers {
            return Result(model: file(try imported.network(), data: evaluation), imported: imported, quantization: nil,
                          calibration: [], calibrationFloatAccuracy: 0, signForm: nil)
        }
        if !imported.isPolynomial {
            let (graph, report) = try imported.signForm(calibration: calibration, allowedLoss: signFormLossAllowed)
            return Result(model: file(.graph(graph), data: evaluation), imported: imported, quantization: nil, calibration: [],
                          calibrationFloatAccuracy: report.stages[0].accuracy, signForm: report)
        }
        var results: [(weightBits: Int, accuracy: Double, agreement: Double, network: ModelFile.Network)] = []
        var floatAccuracy = 0.0
        for bits in weightBitCandidates {
            let network = try imported.network(quantization: PolynomialQuantization(weightBits: bits))
            let probe = file(network, data: calibration)
            floatAccuracy = probe.floatAccuracy
            let accuracy = probe.integerAccuracy
            guard case .polynomialNetwork(let polynomial) = network else { preconditionFailure("isPolynomial") }
            let agreement = try polynomial.integerAgreement(on: calibration, samples: Array(0..<calibration.count))
            results.append((bits, accuracy, agreement, network))
            // Agreement is reported, not required: the 15-level input dominates it (cryptodl-cnn-mnist's
            // first version agreed with its float network on 99.65% of the test images at 7-bit weights, 99.70% at 10).
            if accuracy >= floatAccuracy - accuracyLossAllowed { break }
        }
        let chosen = results.last!
        return Result(model: file(chosen.network, data: evaluation), imported: imported,
                      quantization: PolynomialQuantization(weightBits: chosen.weightBits),
                      calibration: results.map { ($0.weightBits, $0.accuracy, $0.agreement) }, calibrationFloatAccuracy: floatAccuracy,
                      signForm: nil)
    }

    /// Calibration records an import takes from the front of the training split.
    public static let calibrationRecords = 2000

    /// Re-imports a bundled model trained outside Obscura from its ONNX file (relative to the
    /// working directory), calibrated on the first ``calibrationRecords`` training images of
    /// `dataFolder` and measured on its evaluation split: the bundled file, reproduced.
    public static func reproduce(_ recipe: ModelCatalog.Recipe, dataFolder: String) throws -> Result {
        guard let source = recipe.importedSource else { throw ModelError.unknownModel(recipe.name) }
        return try importONNX(path: source.onnx, name: recipe.name, datasetKind: recipe.datasetKind,
                              calibration: try calibrationData(recipe.datasetKind, folder: dataFolder, records: calibrationRecords),
                              evaluation: try recipe.datasetKind.evaluationData(folder: dataFolder))
    }

    /// The first `records` training images of an image dataset in `folder`: the calibration set.
    public static func calibrationData(_ kind: DatasetKind, folder: String, records: Int) throws -> Dataset {
        let training = kind == .fashionMNIST ? try Dataset.fashionMNIST(folder: folder, split: "train")
            : try Dataset.mnist(folder: folder, split: "train")
        return training.subset(0..<min(records, training.count))
    }
}

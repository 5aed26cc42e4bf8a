import ArgumentParser
import Foundation
import ModelImport
import NeuralNet
import ObscuraServer

struct Models: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the bundled models, or describe a model file: what it is and how each backend would run it.")

    @Option(help: "A model file (JSON) to describe instead of listing the bundled models; it is checked as `serve` would load it.")
    var file: String?

    func run() throws {
        guard let file else {
            for name in ModelCatalog.names { describeSummary(try ModelCatalog.load(name)) }
            return
        }
        try describeModelFile(try ModelFile.load(path: file))
    }
}

/// A model's name, task, data, architecture and accuracies.
func describeSummary(_ model: ModelFile) {
    print("\(model.name)")
    print("  task: \(model.task)")
    print("  data: \(model.dataset); \(model.split)")
    print("  architecture: \(model.architecture)")
    print(String(format: "  accuracy on the evaluation split: float %.2f%%, integer %.2f%%",
                 model.floatAccuracy * 100, model.integerAccuracy * 100))
}

/// The summary, the graph's layers, and how each backend would run the model (or why it cannot).
func describeModelFile(_ model: ModelFile) throws {
    describeSummary(model)
    print("  layers (graph, input \(try model.graph().inputShape)):")
    for line in try model.graph().layerSummaries() { print("    \(line)") }
    print("  backends:")
    for specification in ModelRegistry.variants(of: model) {
        do {
            let entry = try ModelRegistry.entry(for: specification, model: model)
            let listing = entry.listing
            var line = "    \(listing.name): \(listing.backend) on \(listing.parameterSet) (\(listing.securityBits)-bit), "
                + "\(listing.inputCiphertexts) input and \(listing.outputCiphertexts) output ciphertexts"
            if let batch = listing.batchSize { line += ", \(batch) image(s) per job" }
            if listing.bootstrapsPerInference > 0 { line += ", \(listing.bootstrapsPerInference) bootstraps" }
            line += String(format: ", evaluation key %.1f MB", Double(entry.evaluationKeyBytes) / 1e6)
            // TFHE and BFV decrypt to the integer reference; CKKS approximates it.
            line += listing.backend.hasPrefix("rlwe-ckks") ? "; approximate (CKKS): see `bench simd --scheme ckks`"
                : String(format: "; predicted encrypted accuracy %.2f%% (exact: the integer form's)", model.integerAccuracy * 100)
            print(line)
        } catch {
            print("    \(specification): cannot run: \(error)")
        }
    }
}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Reproduce a bundled model from its data (fixed seed and split).")

    @Argument(help: "The bundled model to train (see `obscura models`).") var name: String
    @Option(help: "The dataset folder (default: the model's dataset folder).") var data: String?
    @Option(help: "Where to write the model file (default: NAME.json).") var output: String?
    @Option(help: "Epochs instead of the recipe's (CNNs only; the bundled file uses the recipe's).") var epochs: Int?
    @Option(help: "Seed instead of the recipe's (CNNs only).") var seed: UInt64?

    func run() throws {
        guard let recipe = ModelCatalog.recipes.first(where: { $0.name == name }) else {
            throw ValidationError("unknown model '\(name)'; see `obscura models`")
        }
        let folder = data ?? recipe.datasetKind.defaultFolder
        let start = Clock.now()
        let model: ModelFile
        if let source = recipe.importedSource {
            guard epochs == nil && seed == nil else {
                throw ValidationError("\(name) is trained outside Obscura: --epochs and --seed go to `\(source.trainingCommand)`")
            }
            print("\(name) is trained outside Obscura by `\(source.trainingCommand)`; importing \(source.onnx)")
            model = try ModelImporter.reproduce(recipe, dataFolder: folder).model
        } else {
            model = try ModelCatalog.train(name, dataFolder: folder, epochs: epochs, seed: seed, log: { print($0) }) { epoch, loss, accuracy in
                if recipe.datasetKind != .breastCancer || epoch % 25 == 0 || epoch == 1 {
                    print(String(format: "epoch %3d  loss %.4f  training accuracy %.2f%%  (%.0f s)", epoch, loss, accuracy * 100,
                                 Double(Clock.now() - start) / 1e9))
                }
            }
        }
        let path = output ?? "\(name).json"
        try model.save(path: path)
        print(String(format: "%@: float accuracy %.2f%%, integer accuracy %.2f%% -> %@",
                     model.split, model.floatAccuracy * 100, model.integerAccuracy * 100, path))
    }
}

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Accuracy of a model on a dataset.")

    @Option(help: "A bundled model name or a model file.") var model: String
    @Option(help: "The dataset folder (default: the model's dataset folder).") var data: String?
    @Option(help: "Records A..<B instead of the model's evaluation split.") var range: String?
    @Flag(help: "Evaluate the exact integer reference instead of the float model.") var integer = false
    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        let file = try ModelCatalog.load(model)
        let dataset = try file.datasetKind.evaluationData(folder: data ?? file.datasetKind.defaultFolder)
        guard dataset.sampleSize == file.inputSize else {
            throw ValidationError("\(dataset.name) records have \(dataset.sampleSize) values; \(file.name) expects \(file.inputSize)")
        }
        let samples = try range.map { try parseRange($0, count: dataset.count) } ?? file.datasetKind.evaluationSamples(in: dataset)
        let accuracy = file.accuracy(on: dataset, samples: samples, integer: integer)
        // A polynomial network's integer form, against the float network's decisions.
        let agreement = integer ? try file.polynomialNetwork?.integerAgreement(on: dataset, samples: samples) : nil
        if json {
            let agreementField = agreement.map { ", \"float_agreement\": \($0)" } ?? ""
            print("{\"accuracy\": \(accuracy), \"images\": \(samples.count), \"model\": \"\(file.name)\", \"integer\": \(integer)\(agreementField)}")
        } else {
            print(String(format: "%@ (%@) on %d records of %@: accuracy %.2f%%", file.name, integer ? "integer" : "float",
                         samples.count, dataset.name, accuracy * 100)
                  + (agreement.map { String(format: ", the float network's decision on %.2f%%", $0 * 100) } ?? ""))
            if range == nil { print("split: \(file.split)") }
        }
    }
}

/// Parses "A..<B" into the record indices A..<B of a dataset with `count` records.
func parseRange(_ text: String, count: Int) throws -> [Int] {
    let bounds = text.components(separatedBy: "..<").compactMap { Int($0) }
    guard bounds.count == 2, bounds[0] >= 0, bounds[0] < bounds[1], bounds[1] <= count else {
        throw ValidationError("--range must be A..<B within 0..<\(count), got '\(text)'")
    }
    return Array(bounds[0]..<bounds[1])
}

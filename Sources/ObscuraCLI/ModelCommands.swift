import ArgumentParser
import Foundation
import NeuralNet

/// The default location of a bundled model's dataset, relative to the repository.
private func defaultDataFolder(for model: String) -> String {
    model.contains("cancer") ? "../shared/data/breast-cancer" : "../shared/data/mnist"
}

struct Models: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the bundled models.")

    func run() throws {
        for name in ModelCatalog.names {
            let model = try ModelCatalog.load(name)
            print("\(model.name)")
            print("  task: \(model.task)")
            print("  data: \(model.dataset); \(model.split)")
            print("  architecture: \(model.architecture)")
            print(String(format: "  accuracy on the test split: float %.2f%%, integer %.2f%%",
                         model.floatAccuracy * 100, model.integerAccuracy * 100))
        }
    }
}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Reproduce a bundled model from its data (fixed seed and split).")

    @Argument(help: "The bundled model to train (see `obscura models`).") var name: String
    @Option(help: "The dataset folder (default: the model's folder under ../shared/data).") var data: String?
    @Option(help: "Where to write the model file (default: NAME.json).") var output: String?

    func run() throws {
        guard ModelCatalog.names.contains(name) else { throw ValidationError("unknown model '\(name)'; see `obscura models`") }
        let folder = data ?? defaultDataFolder(for: name)
        let model = try ModelCatalog.train(name, dataFolder: folder) { epoch, loss, accuracy in
            if epoch % 25 == 0 || epoch == 1 {
                print(String(format: "epoch %3d  loss %.4f  training accuracy %.2f%%", epoch, loss, accuracy * 100))
            }
        }
        let path = output ?? "\(name).json"
        try model.save(path: path)
        print(String(format: "test split: float accuracy %.2f%%, integer accuracy %.2f%% -> %@",
                     model.floatAccuracy * 100, model.integerAccuracy * 100, path))
    }
}

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Accuracy of a model on a dataset.")

    @Option(help: "A bundled model name or a model file.") var model: String
    @Option(help: "The dataset folder (default: the model's folder under ../shared/data).") var data: String?
    @Option(help: "Records A..<B instead of the model's evaluation split.") var range: String?
    @Flag(help: "Evaluate the exact integer reference instead of the float model.") var integer = false
    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        let file = try ModelCatalog.load(model)
        let dataset = try Dataset.breastCancer(folder: data ?? defaultDataFolder(for: file.name))
        let samples: [Int]
        if let range {
            let bounds = range.components(separatedBy: "..<").compactMap { Int($0) }
            guard bounds.count == 2, bounds[0] >= 0, bounds[0] < bounds[1], bounds[1] <= dataset.count else {
                throw ValidationError("--range must be A..<B within 0..<\(dataset.count)")
            }
            samples = Array(bounds[0]..<bounds[1])
        } else {
            samples = Dataset.breastCancerSplit().test
        }
        let accuracy = file.perceptron.accuracy(on: dataset, samples: samples, integer: integer)
        if json {
            print("{\"accuracy\": \(accuracy), \"images\": \(samples.count), \"model\": \"\(file.name)\", \"integer\": \(integer)}")
        } else {
            print(String(format: "%@ (%@) on %d records: accuracy %.2f%%", file.name, integer ? "integer" : "float",
                         samples.count, accuracy * 100))
        }
    }
}

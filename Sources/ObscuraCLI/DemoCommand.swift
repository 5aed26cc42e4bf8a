import ArgumentParser
import NeuralNet
import PrivateInference

/// The README's first command: private inference end to end on bundled data with bundled models,
/// a client and a server in one process separated by the bytes that would cross the network.
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Private inference on bundled data: the client encrypts, the server computes on ciphertexts, the client decrypts.")

    @Option(help: "MNIST images to classify encrypted with the binarized CNN (0...16; about 20 s each on 2 cores).")
    var images = 2

    func validate() throws {
        guard (0...16).contains(images) else { throw ValidationError("--images must be in 0...16 (16 images are bundled)") }
    }

    func run() throws {
        print("Obscura demo: the server evaluates each network on ciphertexts with plaintext weights and never holds a key")
        print("that decrypts; only the client sees its record and the prediction. Parameters: 128-bit (tfhe-rs sets).")
        try runPerceptron()
        if images > 0 { try runConvolutionalNetwork() }
    }

    private func runPerceptron() throws {
        print("\n[1] paper-perceptron-cancer: the main paper's binarized perceptron on the 115 bundled breast-cancer test records")
        var session = try LocalInference(model: try ModelCatalog.load("paper-perceptron-cancer"),
                                         dataset: try Dataset.bundledSample(.breastCancer))
        describe(session.plan)
        var outcomes: [LocalInference.Outcome] = []
        for index in 0..<session.dataset.count { outcomes.append(try session.run(record: index)) }
        let names = session.dataset.classNames
        for outcome in outcomes.prefix(5) {
            print(String(format: "  record %3d: encrypted prediction %@, label %@, %.2f ms", outcome.record,
                         names[outcome.encryptedClass], names[outcome.label], outcome.seconds * 1000))
        }
        try summarize(outcomes)
    }

    private func runConvolutionalNetwork() throws {
        print("\n[2] paper-bnn-sign-mnist: the paper's binarized CNN with sign activations on \(images) bundled MNIST images")
        var session = try LocalInference(model: try ModelCatalog.load("paper-bnn-sign-mnist"), dataset: try Dataset.bundledSample(.mnist))
        describe(session.plan)
        print(String(format: "client: keys in %.2f s; evaluation key upload %.1f MB (once per client)", session.keygenSeconds,
                     Double(session.evaluationKeyBytes) / 1e6))
        var outcomes: [LocalInference.Outcome] = []
        for index in 0..<images {
            let outcome = try session.run(record: index, progress: layerProgress())
            outcomes.append(outcome)
            print(String(format: "  MNIST test image %d: encrypted prediction %d, label %d, %.1f s (upload %.0f KB, download %.1f MB)",
                         8000 + index, outcome.encryptedClass, outcome.label, outcome.seconds,
                         Double(outcome.uploadBytes) / 1e3, Double(outcome.downloadBytes) / 1e6))
        }
        try summarize(outcomes)
    }

    /// Prints accuracy and exactness, and fails the demo if any decrypted score differs from the
    /// plaintext integer reference.
    private func summarize(_ outcomes: [LocalInference.Outcome]) throws {
        let correct = outcomes.filter { $0.encryptedClass == $0.label }.count
        let exact = outcomes.filter(\.exact).count
        let times = outcomes.map(\.seconds).sorted()
        print(String(format: "  %d/%d correct; decrypted scores equal the plaintext integer reference on %d/%d; median %.3f s per record",
                     correct, outcomes.count, exact, outcomes.count, times[times.count / 2]))
        guard exact == outcomes.count else { throw DemoError.wrongResult("\(outcomes.count - exact) encrypted inference(s)") }
    }
}

enum DemoError: Error, CustomStringConvertible {
    case wrongResult(String)
    var description: String {
        switch self {
        case .wrongResult(let what): "the decrypted result of \(what) differs from the plaintext reference"
        }
    }
}

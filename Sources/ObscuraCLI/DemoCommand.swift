import ArgumentParser
import Foundation
import NeuralNet
import ObscuraClient
import ObscuraServer
import PrivateInference
import SIMDInference
import TFHE

/// The README's first command: private inference end to end through the HTTP API. It starts the
/// server in this process on loopback with the bundled models, and a client that keeps its
/// secret key, registers its evaluation key, encrypts bundled test records, submits them, polls
/// with a progress bar, downloads and decrypts.
struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Private inference on bundled data through an in-process server on loopback: the client encrypts, the server computes on ciphertexts, the client decrypts.")

    @Option(help: "MNIST images to classify encrypted with the binarized CNN (0...16; about 20 s each on 2 cores).")
    var images = 2

    func validate() throws {
        guard (0...16).contains(images) else { throw ValidationError("--images must be in 0...16 (16 images are bundled)") }
    }

    func run() async throws {
        print("Obscura demo: a server on loopback evaluates each network on ciphertexts with plaintext weights and never holds")
        print("a key that decrypts; only the client sees its record and the prediction. Parameters: 128-bit (tfhe-rs sets).")
        try await withLoopbackServer(models: try ModelRegistry.bundled()) { server, running in
            print("server: http://127.0.0.1:\(running.port), serving \(server.models.entries.count) models, state in a temporary folder")
            let service = ServiceClient(baseURL: running.url)
            try await classify(model: "paper-perceptron-cancer", records: nil, service: service,
                               heading: "[1] the main paper's binarized perceptron on the 115 bundled breast-cancer test records")
            if images > 0 {
                try await classify(model: "paper-bnn-sign-mnist", records: images, service: service,
                                   heading: "[2] the paper's binarized CNN with sign activations on \(images) bundled MNIST test images")
            }
            try await cryptoNets(service: service)
        }
    }

    /// CryptoNets on RLWE through the server: BFV in latency mode, one job per image across the
    /// slots, exact; then all 16 images as one CKKS throughput job (a batch holds 4,096).
    private func cryptoNets(service: ServiceClient) async throws {
        let name = "cryptonets-mnist"
        let model = try ModelCatalog.load(name)
        guard let network = model.polynomialNetwork else { throw DemoError.wrongResult("\(name) is not a polynomial network") }
        let form = try network.integerForm()
        let dataset = try Dataset.bundledSample(model.datasetKind)
        let images = (0..<dataset.count).map { dataset.sample($0) }
        let references = images.map { form.scores($0) }

        print("\n[3] CryptoNets on BFV (RLWE), one image per job across the slots, on the \(images.count) bundled MNIST test images (\(name))")
        let plan = try SIMDPlan.compile(form, mode: .latency)
        let ring = plan.parameters[0]
        print("  plan: N = \(ring.polynomialSize), Q of \(Int(ring.logModulus.rounded())) bits, \(plan.parameters.count) plaintext primes "
              + "joined by the CRT, \(plan.securityBits)-bit")
        var start = Clock.now()
        let latency = try await PrivateBatchClassifier.connect(to: service, model: name, plan: plan)
        print(String(format: "  client: keys made and %.0f MB of evaluation keys registered in %.1f s (once per client)",
                     Double(plan.evaluationKeyBytes) / 1e6, Double(Clock.now() - start) / 1e9))
        var predictions: [Int] = [], exact = 0, times: [Double] = [], upload = 0, download = 0
        for (image, reference) in zip(images, references) {
            start = Clock.now()
            let prediction = try await latency.classify([image])
            times.append(Double(Clock.now() - start) / 1e9)
            predictions.append(prediction.predictedClasses[0])
            if prediction.scores[0] == reference { exact += 1 }
            upload += prediction.uploadBytes
            download += prediction.downloadBytes
        }
        let correct = zip(predictions, dataset.labels).filter { $0 == $1 }.count
        print("  predictions: " + predictions.map(String.init).joined(separator: " "))
        print("  labels:      " + dataset.labels.map(String.init).joined(separator: " "))
        times.sort()
        print(String(format: "  %d/%d correct (the model: %.2f%% on the 10,000 test images); decrypted scores equal the integer reference on %d/%d;",
                     correct, images.count, model.integerAccuracy * 100, exact, images.count))
        print(String(format: "  median %.2f s per image over HTTP (encrypt, upload, evaluate, download, decrypt), %.1f MB up and %.1f MB down per image",
                     times[times.count / 2], Double(upload) / 1e6 / Double(images.count), Double(download) / 1e6 / Double(images.count)))
        guard exact == images.count else { throw DemoError.wrongResult("\(images.count - exact) CryptoNets inference(s)") }

        let batchName = "\(name)@throughput-ckks"
        let batchPlan = try SIMDPlan.compile(form, scheme: .ckks)
        print("\n[4] the same network on CKKS, one image per slot: all \(images.count) images in one job (a job holds up to \(batchPlan.batchSize))")
        start = Clock.now()
        let batch = try await PrivateBatchClassifier.connect(to: service, model: batchName, plan: batchPlan)
        let bar = JobProgressBar(label: "batch")
        let answer = try await batch.classify(images) { bar.show($0) }
        bar.finish()
        let agree = zip(answer.predictedClasses, references).filter { $0 == BinarizedCNN.argmax($1) }.count
        print(String(format: "  %d/%d correct; argmax equal to the integer reference's on %d/%d (CKKS is approximate); %.1f s in all, %.0f MB up, %.1f MB down",
                     zip(answer.predictedClasses, dataset.labels).filter { $0 == $1 }.count, images.count, agree, images.count,
                     Double(Clock.now() - start) / 1e9, Double(answer.uploadBytes) / 1e6, Double(answer.downloadBytes) / 1e6))
        guard agree == images.count else { throw DemoError.wrongResult("\(images.count - agree) CKKS argmax(es) differ from the integer reference") }
    }

    /// Classifies the first `records` bundled records (all when nil) through the server, prints
    /// each prediction beside its label, and fails if any decrypted score differs from the
    /// plaintext integer reference.
    private func classify(model name: String, records: Int?, service: ServiceClient, heading: String) async throws {
        print("\n\(heading) (\(name))")
        let model = try ModelCatalog.load(name)
        let plan = try InferencePlan.served(model: model)
        describe(plan)
        let dataset = try Dataset.bundledSample(model.datasetKind)
        let start = Clock.now()
        var classifier = try await PrivateClassifier.connect(to: service, plan: plan, secretKey: SecretKey(parameters: plan.parameters))
        if classifier.keyID != nil {
            print(String(format: "client: keys made and evaluation key registered in %.1f s (uploaded once per client)",
                         Double(Clock.now() - start) / 1e9))
        }
        let verbose = records != nil
        var (correct, exact, times) = (0, 0, [Double]())
        for index in 0..<(records ?? dataset.count) {
            let record = dataset.sample(index)
            let bar = JobProgressBar(label: "record \(index)")
            let began = Clock.now()
            let prediction = try await classifier.classify(record) { if verbose { bar.show($0) } }
            bar.finish()
            times.append(Double(Clock.now() - began) / 1e9)
            if prediction.predictedClass == dataset.labels[index] { correct += 1 }
            if prediction.scores == plan.referenceScores(record) { exact += 1 }
            if verbose || index < 5 {
                print(String(format: "  record %3d: encrypted prediction %@, label %@, %.3f s (upload %.0f KB, download %.0f KB)", index,
                             dataset.classNames[prediction.predictedClass], dataset.classNames[dataset.labels[index]], times.last!,
                             Double(prediction.uploadBytes) / 1e3, Double(prediction.downloadBytes) / 1e3))
            }
        }
        times.sort()
        print(String(format: "  %d/%d correct; decrypted scores equal the plaintext integer reference on %d/%d;",
                     correct, times.count, exact, times.count))
        print("  " + Self.referenceAccuracy(of: model))
        print(String(format: "  median %.3f s per record over HTTP", times[times.count / 2]))
        guard exact == times.count else { throw DemoError.wrongResult("\(times.count - exact) encrypted inference(s)") }
    }
}

extension Demo {
    /// The accuracy of the integer reference (what every decrypted result equals, bit for bit)
    /// on the model's whole evaluation split, measured now in the clear when the dataset is on
    /// this machine; otherwise the figure stored in the model file.
    static func referenceAccuracy(of model: ModelFile) -> String {
        let kind = model.datasetKind
        guard let data = try? kind.evaluationData(folder: kind.defaultFolder), data.sampleSize == model.inputSize else {
            return String(format: "the model's integer reference: %.2f%% (%@; stored in the model file)",
                          model.integerAccuracy * 100, kind.splitDescription)
        }
        let samples = kind.evaluationSamples(in: data)
        let accuracy = model.accuracy(on: data, samples: samples, integer: true)
        return String(format: "the integer reference that encrypted inference reproduces: %.2f%% on the %@ evaluation records, measured now in the clear (%@)",
                      accuracy * 100, samples.count.formatted(), kind.splitDescription)
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

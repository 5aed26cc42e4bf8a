import ArgumentParser
import CipherCircuits
import Foundation
import InferenceBackend
import NeuralNet
import PrivateInference
import TFHE

/// How the server evaluates the network.
enum InferenceMode: String, ExpressibleByArgument, CaseIterable {
    /// Linear layers on LWE integers, one sign bootstrap per neuron (the default).
    case pbs
    /// The main paper's design: boolean ciphertexts and bit-level circuits (perceptron only,
    /// end to end).
    case bitwise
}

/// A client and a server in one process, separated by the bytes that would cross the network:
/// what `infer-local`, `bench infer` and the demo run.
struct LocalInference {
    /// One record's outcome.
    struct Outcome {
        let record: Int
        let label: Int
        let encryptedClass: Int
        let referenceClass: Int
        let exact: Bool
        let seconds: Double
        let uploadBytes: Int
        let downloadBytes: Int
        let bootstraps: Int
    }

    /// Which TFHE parameter set pbs mode runs on, and what its server answers.
    enum ParameterSelection {
        /// This one.
        case fixed(TFHEParameters, InferencePlan.Answer)
        /// The planner's choice (``ParameterChoice``) with these costs and limits.
        case fastest(BootstrapCosts, InferencePlan.Answer, ParameterChoice.Limits)
    }


    let model: ModelFile
    let dataset: Dataset
    let mode: InferenceMode
    let evaluationKeyBytes: Int
    let keygenSeconds: Double
    let evaluationSplit: [Int]
    /// The pbs plan (also describes the model in bitwise mode).
    let plan: InferencePlan
    /// How the planner chose the plan's parameter set, when it chose.
    let choice: ParameterChoice?
    /// The mode's backend: the client (with the secret key) and the server built from the
    /// evaluation key's bytes.
    private var client: any InferenceBackendClient
    private let server: any InferenceBackendServer

    /// Loads the model and its evaluation data from `dataFolder` (default: the dataset's folder).
    init(model name: String, dataFolder: String?, mode: InferenceMode = .pbs, circuit: CircuitMethod = .paper,
         parameters: ParameterSelection = .fixed(.integer4Bit128, .partialSums)) throws {
        let model = try ModelCatalog.load(name)
        try self.init(model: model, dataset: try model.datasetKind.evaluationData(folder: dataFolder ?? model.datasetKind.defaultFolder),
                      mode: mode, circuit: circuit, parameters: parameters)
    }

    /// Compiles the model, generates the client's keys and sets up the server with the serialized
    /// evaluation key only.
    init(model: ModelFile, dataset: Dataset, mode: InferenceMode = .pbs, circuit: CircuitMethod = .paper,
         parameters: ParameterSelection = .fixed(.integer4Bit128, .partialSums)) throws {
        guard dataset.sampleSize == model.inputSize else {
            throw InferenceError.sizeMismatch(what: "\(dataset.name) record values", expected: model.inputSize, found: dataset.sampleSize)
        }
        switch parameters {
        case .fixed(let set, let answer):
            plan = try InferencePlan(model: model, parameters: set, answer: answer)
            choice = nil
        case .fastest(let costs, let answer, let limits):
            let choice = try ParameterChoice(model: model, answer: answer, limits: limits, costs: costs)
            plan = choice.plan
            self.choice = choice
        }
        self.model = model
        self.dataset = dataset
        self.mode = mode
        evaluationSplit = model.datasetKind.evaluationSamples(in: dataset)
        let start = Clock.now()
        switch mode {
        case .pbs:
            client = InferenceClient(plan: plan)
        case .bitwise:
            guard let perceptron = model.perceptron else {
                throw InferenceError.unsupportedModel("bitwise mode runs the perceptron end to end; for the CNN see `bench infer-layers`")
            }
            client = BitwisePerceptronClient(perceptron: perceptron)
        }
        // A plan without bootstraps (the perceptron in pbs mode: one linear layer) needs no evaluation key.
        let upload = client.evaluationKeyBytes()
        keygenSeconds = Double(Clock.now() - start) / 1e9
        switch mode {
        case .pbs:
            let key = upload.isEmpty ? nil : EvaluationKey(try CompressedEvaluationKey(deserializing: upload, expecting: plan.parameters))
            server = try PBSInferenceEvaluator(plan: plan, key: key)
        case .bitwise:
            let key = EvaluationKey(try CompressedEvaluationKey(deserializing: upload, expecting: BitwisePerceptronEvaluator.parameters))
            server = try BitwisePerceptronEvaluator(perceptron: model.perceptron!, method: circuit, key: key)
        }
        evaluationKeyBytes = upload.count
    }

    /// The records of the model's evaluation split, or of `range` ("A..<B"), the first `limit` of them.
    func records(range: String?, limit: Int?) throws -> [Int] {
        let all = try range.map { try parseRange($0, count: dataset.count) } ?? evaluationSplit
        return Array(all.prefix(limit ?? all.count))
    }

    /// Encrypts record `index`, evaluates it on the server, decrypts (the one pipeline,
    /// ``EncryptedInference/roundTrip(_:client:server:progress:)``), and checks the scores
    /// against the integer reference.
    mutating func run(record index: Int, progress: @escaping EvaluationProgress = { _, _, _ in }) throws -> Outcome {
        let record = dataset.sample(index)
        let reference = plan.referenceScores(record)
        let bootstraps = BootstrapTally()
        let start = Clock.now()
        let trip: EncryptedInference.RoundTrip
        do {
            trip = try EncryptedInference.roundTrip([record], client: &client, server: server) { stage, done, total in
                bootstraps.report(done: done, total: total)
                progress(stage, done, total)
            }
        } catch InferenceError.inconsistentAnswer {
            // A wrong answer (the bitwise class bit against its score) is a mismatch to count, not the end of the run.
            return Outcome(record: index, label: dataset.labels[index], encryptedClass: -1, referenceClass: plan.classify(scores: reference),
                           exact: false, seconds: Double(Clock.now() - start) / 1e9, uploadBytes: 0, downloadBytes: 0,
                           bootstraps: bootstraps.total)
        }
        let scores = trip.scores[0].map { Int(truncatingIfNeeded: $0) }
        return Outcome(record: index, label: dataset.labels[index], encryptedClass: plan.classify(scores: scores),
                       referenceClass: plan.classify(scores: reference), exact: scores == reference,
                       seconds: Double(Clock.now() - start) / 1e9, uploadBytes: trip.uploadBytes, downloadBytes: trip.downloadBytes,
                       bootstraps: bootstraps.total)
    }
}

/// Bootstraps of one evaluation, from its progress reports: each stage reports its total once
/// it is done (progress comes from the evaluator's worker threads).
private final class BootstrapTally: @unchecked Sendable {
    private let lock = NSLock()
    private var finished = 0

    func report(done: Int, total: Int) {
        if done == total { lock.withLock { finished += total } }
    }

    var total: Int { lock.withLock { finished } }
}

extension CircuitMethod: ExpressibleByArgument {}

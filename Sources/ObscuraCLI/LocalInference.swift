import ArgumentParser
import CipherCircuits
import Foundation
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
        /// The server's time to pack and serialize the result (part of `seconds`).
        let resultSeconds: Double
    }

    /// Which TFHE parameter set pbs mode runs on, and what its server answers.
    enum ParameterSelection {
        /// This one.
        case fixed(TFHEParameters, InferencePlan.Answer)
        /// The planner's choice (``ParameterChoice``) with these costs and limits.
        case fastest(BootstrapCosts, InferencePlan.Answer, ParameterChoice.Limits)
    }

    /// The two engines, each a client and a server.
    private enum Engine {
        case pbs(InferenceClient, PBSInferenceEvaluator)
        case bitwise(BitwisePerceptronClient, BitwisePerceptronEvaluator)
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
    private var engine: Engine

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
        var upload: [UInt8] = []
        let start = Clock.now()
        switch mode {
        case .pbs:
            // A plan without bootstraps (the perceptron: one linear layer) needs no evaluation key.
            let client = InferenceClient(plan: plan)
            if plan.bootstrapsPerInference > 0 { upload = client.makeEvaluationKey().serialized() }
            keygenSeconds = Double(Clock.now() - start) / 1e9
            let key = upload.isEmpty ? nil : EvaluationKey(try CompressedEvaluationKey(deserializing: upload, expecting: plan.parameters))
            engine = .pbs(client, try PBSInferenceEvaluator(plan: plan, key: key))
        case .bitwise:
            guard let perceptron = model.perceptron else {
                throw InferenceError.unsupportedModel("bitwise mode runs the perceptron end to end; for the CNN see `bench infer-layers`")
            }
            let client = BitwisePerceptronClient(perceptron: perceptron)
            upload = client.makeEvaluationKey().serialized()
            keygenSeconds = Double(Clock.now() - start) / 1e9
            let key = EvaluationKey(try CompressedEvaluationKey(deserializing: upload, expecting: BitwisePerceptronEvaluator.parameters))
            engine = .bitwise(client, try BitwisePerceptronEvaluator(perceptron: perceptron, method: circuit, key: key))
        }
        evaluationKeyBytes = upload.count
    }

    /// The records of the model's evaluation split, or of `range` ("A..<B"), the first `limit` of them.
    func records(range: String?, limit: Int?) throws -> [Int] {
        let all = try range.map { try parseRange($0, count: dataset.count) } ?? evaluationSplit
        return Array(all.prefix(limit ?? all.count))
    }

    /// Encrypts record `index`, evaluates it on the server, decrypts, and checks the result
    /// against the integer reference (scores, and in bitwise mode the class bit too).
    mutating func run(record index: Int, progress: @escaping PBSInferenceEvaluator.Progress = { _, _, _ in }) throws -> Outcome {
        let record = dataset.sample(index)
        let reference = plan.referenceScores(record)
        let referenceClass = plan.classify(scores: reference)
        var uploadBytes = 0, downloadBytes = 0, bootstraps = 0, resultSeconds = 0.0
        var scores: [Int] = [], decided = -1
        let start = Clock.now()
        switch engine {
        case .pbs(var client, let server):
            let upload = try client.encryptForUpload(record)
            let inputs = try [SeededLweCiphertext](deserializing: upload, expecting: plan.parameters).map { $0.expanded() }
            let outputs = try server.evaluate(inputs, progress: progress)
            let packing = Clock.now()
            let download = server.serializeResult(outputs)
            resultSeconds = Double(Clock.now() - packing) / 1e9
            scores = try client.decryptScores(serialized: download)
            decided = plan.classify(scores: scores)
            (uploadBytes, downloadBytes, bootstraps) = (upload.count, download.count, plan.bootstrapsPerInference)
            engine = .pbs(client, server)
        case .bitwise(var client, let server):
            let parameters = BitwisePerceptronEvaluator.parameters
            let upload = try client.encrypt(record).serialized(parameters: parameters)
            let inputs = try [SeededLweCiphertext](deserializing: upload, expecting: parameters).map { $0.expanded() }
            let result = try server.evaluate(inputs)
            let download = result.outputs.serialized(parameters: parameters)
            let decrypted = client.decrypt(try [LweCiphertext](deserializing: download, expecting: parameters))
            (scores, decided) = ([decrypted.score], decrypted.decision)
            (uploadBytes, downloadBytes, bootstraps) = (upload.count, download.count, result.bootstraps)
            engine = .bitwise(client, server)
        }
        return Outcome(record: index, label: dataset.labels[index], encryptedClass: decided, referenceClass: referenceClass,
                       exact: scores == reference && decided == referenceClass, seconds: Double(Clock.now() - start) / 1e9,
                       uploadBytes: uploadBytes, downloadBytes: downloadBytes, bootstraps: bootstraps, resultSeconds: resultSeconds)
    }
}

extension CircuitMethod: ExpressibleByArgument {}

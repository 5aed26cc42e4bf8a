import Foundation
import NeuralNet
import PrivateInference
import TFHE

/// A client and a `pbs`-mode server in one process, separated by the bytes that would cross
/// the network: what `infer-local`, `bench infer` and the demo run.
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
    }

    let plan: InferencePlan
    let dataset: Dataset
    let evaluationKeyBytes: Int
    let keygenSeconds: Double
    private var client: InferenceClient
    private let server: PBSInferenceEvaluator

    let evaluationSplit: [Int]

    /// Loads the model and its evaluation data from `dataFolder` (default: the dataset's folder).
    init(model name: String, dataFolder: String?) throws {
        let model = try ModelCatalog.load(name)
        try self.init(model: model, dataset: try model.datasetKind.evaluationData(folder: dataFolder ?? model.datasetKind.defaultFolder))
    }

    /// Compiles the model, generates the client's keys and sets up the server with the serialized
    /// evaluation key only.
    init(model: ModelFile, dataset: Dataset) throws {
        let plan = try InferencePlan(model: model)
        self.plan = plan
        self.dataset = dataset
        evaluationSplit = model.datasetKind.evaluationSamples(in: dataset)
        guard dataset.sampleSize == model.inputSize else {
            throw InferenceError.sizeMismatch(what: "\(dataset.name) record values", expected: model.inputSize, found: dataset.sampleSize)
        }
        // A plan without bootstraps (the perceptron: one linear layer) needs no evaluation key.
        let needsKey = plan.bootstrapsPerInference > 0
        var client: InferenceClient!
        var upload: [UInt8] = []
        keygenSeconds = Clock.seconds {
            client = InferenceClient(plan: plan)
            if needsKey { upload = client.makeEvaluationKey().serialized() }
        }
        self.client = client
        evaluationKeyBytes = upload.count
        let key = needsKey ? EvaluationKey(try CompressedEvaluationKey(deserializing: upload, expecting: plan.parameters)) : nil
        server = try PBSInferenceEvaluator(plan: plan, key: key)
    }

    /// The records of the model's evaluation split, or of `range` ("A..<B"), the first `limit` of them.
    func records(range: String?, limit: Int?) throws -> [Int] {
        let all = try range.map { try parseRange($0, count: dataset.count) } ?? evaluationSplit
        return Array(all.prefix(limit ?? all.count))
    }

    /// Encrypts record `index`, evaluates it on the server, decrypts, and checks the scores
    /// against the integer reference.
    mutating func run(record index: Int, progress: @escaping PBSInferenceEvaluator.Progress = { _, _, _ in }) throws -> Outcome {
        let record = dataset.sample(index)
        var uploadBytes = 0, downloadBytes = 0
        var scores: [Int] = []
        let seconds = try Clock.seconds {
            let upload = try client.encrypt(record).serialized(parameters: plan.parameters)
            uploadBytes = upload.count
            let inputs = try [SeededLweCiphertext](deserializing: upload, expecting: plan.parameters).map { $0.expanded() }
            let download = try server.evaluate(inputs, progress: progress).serialized(parameters: plan.parameters)
            downloadBytes = download.count
            scores = try client.decryptScores(try [LweCiphertext](deserializing: download, expecting: plan.parameters))
        }
        let reference = plan.referenceScores(record)
        return Outcome(record: index, label: dataset.labels[index], encryptedClass: plan.classify(scores: scores),
                       referenceClass: plan.classify(scores: reference), exact: scores == reference, seconds: seconds,
                       uploadBytes: uploadBytes, downloadBytes: downloadBytes)
    }
}

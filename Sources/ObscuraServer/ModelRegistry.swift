import NeuralNet
import ObscuraAPI
import PrivateInference
import SIMDInference
import TFHE

/// A model the server evaluates: how (its backend and compiled plan) and what `GET /v1/models`
/// says about it.
public struct ServedModelEntry: Sendable {
    /// How the server evaluates the model.
    public enum Backend: Sendable {
        /// TFHE programmable bootstrapping: one record per job, a TFHE evaluation key.
        case tfhe(InferencePlan)
        /// RLWE slots (BFV or CKKS): a batch of images (throughput) or one image (latency) per
        /// job, one RLWE evaluation key per plaintext prime.
        case simd(SIMDPlan)
    }

    /// The backend with its compiled plan.
    public let backend: Backend
    /// The listing, without the observed and expected latencies (the server fills them in).
    public let listing: ServedModel

    /// A TFHE model with its plan and description.
    public init(plan: InferencePlan, task: String, dataset: String, inputShape: [Int], integerAccuracy: Double) {
        backend = .tfhe(plan)
        listing = ServedModel(name: plan.servedName, task: task, dataset: dataset, inputShape: inputShape,
                              inputCiphertexts: plan.inputCount, outputCiphertexts: plan.outputCount, backend: "tfhe-pbs",
                              parameterSet: plan.parameters.name, securityBits: plan.parameters.securityBits,
                              bootstrapsPerInference: plan.bootstrapsPerInference, observedLatencySeconds: nil, expectedLatencySeconds: nil,
                              integerAccuracy: integerAccuracy, answer: plan.answer.rawValue)
    }

    /// A model file compiled for `pbs` mode, answering with `answer`.
    public init(model: ModelFile, answer: InferencePlan.Answer = .partialSums) throws(InferenceError) {
        let plan = try InferencePlan.served(model: model, answer: answer)
        let shape = model.binarizedCNN.map { [1, $0.shape.imageSide, $0.shape.imageSide] } ?? [model.inputSize]
        self.init(plan: plan, task: model.task, dataset: "\(model.dataset), \(model.split)", inputShape: shape,
                  integerAccuracy: model.integerAccuracy)
    }

    /// A polynomial network (CryptoNets, CryptoDL) served on RLWE under `name`.
    public init(name: String, plan: SIMDPlan, model: ModelFile) {
        backend = .simd(plan)
        let side = Int(Double(plan.network.inputCount).squareRoot())
        let primes = plan.parameters.count
        listing = ServedModel(name: name, task: model.task, dataset: "\(model.dataset), \(model.split)",
                              inputShape: side * side == plan.network.inputCount ? [1, side, side] : [plan.network.inputCount],
                              inputCiphertexts: plan.inputCiphertexts * primes, outputCiphertexts: plan.outputCiphertexts * primes,
                              backend: "rlwe-\(plan.scheme.rawValue)-\(plan.mode.rawValue)", parameterSet: plan.parameterSetName,
                              securityBits: plan.securityBits, bootstrapsPerInference: 0, observedLatencySeconds: nil,
                              expectedLatencySeconds: nil, integerAccuracy: model.integerAccuracy, batchSize: plan.batchSize)
    }

    /// Whether a client must register an evaluation key before querying the model (RLWE: always,
    /// for the relinearization).
    public var needsEvaluationKey: Bool {
        switch backend {
        case .tfhe(let plan): plan.bootstrapsPerInference > 0
        case .simd: true
        }
    }

    /// The parameter set a key for this model must have.
    public var parameterSet: String { listing.parameterSet }

    /// The exact size of this model's evaluation key.
    public var evaluationKeyBytes: Int {
        switch backend {
        case .tfhe(let plan): CompressedEvaluationKey.serializedSize(for: plan.parameters)
        case .simd(let plan): plan.evaluationKeyBytes
        }
    }
}

/// The models a server evaluates, by name.
public struct ModelRegistry: Sendable {
    /// The entries in listing order.
    public let entries: [ServedModelEntry]

    /// A registry of the given models; names must be unique.
    public init(_ entries: [ServedModelEntry]) {
        precondition(Set(entries.map(\.listing.name)).count == entries.count, "served model names must be unique")
        self.entries = entries
    }

    /// Every bundled model the server can evaluate: the perceptron and the sign-activation CNNs
    /// on TFHE (the others are skipped, as `InferencePlan` refuses them), and each polynomial
    /// network on RLWE twice, as `NAME` (one image per job, BFV latency mode, exact) and
    /// `NAME@throughput-ckks` (a batch of up to 4,096 images per job).
    public static func bundled() throws -> ModelRegistry {
        var entries: [ServedModelEntry] = []
        for name in ModelCatalog.names {
            let model = try ModelCatalog.load(name)
            let specifications = model.polynomialNetwork != nil ? [name, "\(name)@throughput-ckks"] : [name]
            // A variant no backend runs is skipped, not fatal: the rest are still served.
            entries += specifications.compactMap { try? entry(for: $0, model: model) }
        }
        return ModelRegistry(entries)
    }

    /// The named models (bundled names or model files). A polynomial network may carry
    /// `@MODE-SCHEME` (`@latency-bfv`, the default, `@throughput-bfv`, `@latency-ckks`, `@throughput-ckks`), a TFHE
    /// CNN `@scores` (its answer holds only the scores' digits, ``InferencePlan/Answer/scores``).
    /// An RLWE variant is served under the whole specification, a scores-only model as
    /// `MODEL@scores` (``InferencePlan/servedName``). A model no backend can run is an error naming it.
    public static func loading(_ specifications: [String]) throws -> ModelRegistry {
        var entries: [ServedModelEntry] = []
        for specification in specifications {
            let name = String(specification.split(separator: "@", maxSplits: 1)[0])
            entries.append(try entry(for: specification, model: try ModelCatalog.load(name)))
        }
        let names = entries.map(\.listing.name)
        if let repeated = names.first(where: { name in names.filter { $0 == name }.count > 1 }) {
            throw ModelRegistryError.duplicateName(repeated)
        }
        return ModelRegistry(entries)
    }

    /// The specifications a model can be asked for: for a polynomial network each RLWE variant
    /// (`NAME@MODE-SCHEME`); for the perceptron its name; for any other network its name and
    /// `NAME@scores`.
    public static func variants(of model: ModelFile) -> [String] {
        if model.polynomialNetwork != nil { return ["latency-bfv", "throughput-bfv", "latency-ckks", "throughput-ckks"].map { "\(model.name)@\($0)" } }
        return model.perceptron != nil ? [model.name] : [model.name, "\(model.name)@\(InferencePlan.Answer.scores.rawValue)"]
    }

    /// The entry `specification` (`NAME`, `NAME@scores` or `NAME@MODE-SCHEME`) names, `model`
    /// being NAME's file.
    public static func entry(for specification: String, model: ModelFile) throws -> ServedModelEntry {
        let parts = specification.split(separator: "@", maxSplits: 1).map(String.init)
        guard let network = model.polynomialNetwork else {
            let answer: InferencePlan.Answer
            switch parts.count > 1 ? parts[1] : nil {
            case nil: answer = .partialSums
            case InferencePlan.Answer.scores.rawValue?: answer = .scores
            case let other?:
                throw ModelRegistryError.notServable(model: specification, reason: "a TFHE model takes @scores or nothing, not @\(other) "
                    + "(@MODE-SCHEME is for polynomial networks, RLWE)")
            }
            do {
                return try ServedModelEntry(model: model, answer: answer)
            } catch {
                throw ModelRegistryError.notServable(model: specification, reason: error.description)
            }
        }
        let variant = parts.count > 1 ? parts[1] : "latency-bfv"
        let words = variant.split(separator: "-").map(String.init)
        guard words.count == 2, let mode = SIMDPlan.Mode(rawValue: words[0]), let scheme = SIMDPlan.Scheme(rawValue: words[1]) else {
            throw ModelRegistryError.notServable(model: specification, reason: "\(variant) is not MODE-SCHEME (latency-bfv, throughput-bfv, latency-ckks, throughput-ckks)")
        }
        do {
            let plan = try SIMDPlan.compile(try network.integerForm(), mode: mode, scheme: scheme)
            return ServedModelEntry(name: parts.count > 1 ? specification : model.name, plan: plan, model: model)
        } catch {
            throw ModelRegistryError.notServable(model: specification, reason: "\(error)")
        }
    }

    /// The size of the largest evaluation key of the served models.
    public var largestEvaluationKey: Int { entries.map(\.evaluationKeyBytes).max() ?? 0 }

    /// The model named `name`.
    public func entry(named name: String) -> ServedModelEntry? {
        entries.first { $0.listing.name == name }
    }
}

/// Why a set of models cannot be served.
public enum ModelRegistryError: Error, Equatable, CustomStringConvertible {
    /// No backend can run the model (e.g. the scaled-ReLU CNN), or its specification is wrong.
    case notServable(model: String, reason: String)
    /// Two models share a name, so a request could not say which it means.
    case duplicateName(String)

    public var description: String {
        switch self {
        case .notServable(let model, let reason): "\(model) cannot be served: \(reason)"
        case .duplicateName(let name): "two of the served models are named \(name)"
        }
    }
}

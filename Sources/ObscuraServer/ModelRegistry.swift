import NeuralNet
import ObscuraAPI
import PrivateInference

/// A model the server evaluates: its compiled plan and what `GET /v1/models` says about it.
public struct ServedModelEntry: Sendable {
    /// The compiled plan: message spaces, bootstraps, parameter set.
    public let plan: InferencePlan
    /// The listing, without the observed and expected latencies (the server fills them in).
    public let listing: ServedModel

    /// A model with its plan and description.
    public init(plan: InferencePlan, task: String, dataset: String, inputShape: [Int], integerAccuracy: Double) {
        self.plan = plan
        listing = ServedModel(name: plan.modelName, task: task, dataset: dataset, inputShape: inputShape,
                              inputCiphertexts: plan.inputCount, outputCiphertexts: plan.outputCount, backend: "tfhe-pbs",
                              parameterSet: plan.parameters.name, securityBits: plan.parameters.securityBits,
                              bootstrapsPerInference: plan.bootstrapsPerInference, observedLatencySeconds: nil, expectedLatencySeconds: nil,
                              integerAccuracy: integerAccuracy)
    }

    /// A model file compiled for `pbs` mode.
    public init(model: ModelFile) throws(InferenceError) {
        let plan = try InferencePlan(model: model)
        let shape = model.binarizedCNN.map { [1, $0.shape.imageSide, $0.shape.imageSide] } ?? [model.inputSize]
        self.init(plan: plan, task: model.task, dataset: "\(model.dataset), \(model.split)", inputShape: shape,
                  integerAccuracy: model.integerAccuracy)
    }

    /// Whether a client must register an evaluation key before querying the model.
    public var needsEvaluationKey: Bool { plan.bootstrapsPerInference > 0 }
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

    /// Every bundled model that `pbs` mode can evaluate (the perceptron and the sign-activation
    /// CNNs; the others are skipped, as `InferencePlan` refuses them).
    public static func bundled() throws -> ModelRegistry {
        var entries: [ServedModelEntry] = []
        for name in ModelCatalog.names {
            let model = try ModelCatalog.load(name)
            guard let entry = try? ServedModelEntry(model: model) else { continue }
            entries.append(entry)
        }
        return ModelRegistry(entries)
    }

    /// The named models (bundled names or model files); a model `pbs` mode cannot run is an
    /// error naming it.
    public static func loading(_ namesOrPaths: [String]) throws -> ModelRegistry {
        var entries: [ServedModelEntry] = []
        for name in namesOrPaths {
            do {
                entries.append(try ServedModelEntry(model: try ModelCatalog.load(name)))
            } catch let error as InferenceError {
                throw ModelRegistryError.notServable(model: name, reason: error.description)
            }
        }
        let names = entries.map(\.listing.name)
        if let repeated = names.first(where: { name in names.filter { $0 == name }.count > 1 }) {
            throw ModelRegistryError.duplicateName(repeated)
        }
        return ModelRegistry(entries)
    }

    /// The model named `name`.
    public func entry(named name: String) -> ServedModelEntry? {
        entries.first { $0.listing.name == name }
    }
}

/// Why a set of models cannot be served.
public enum ModelRegistryError: Error, Equatable, CustomStringConvertible {
    /// `pbs` mode cannot run the model (e.g. the scaled-ReLU CNN or a polynomial network).
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

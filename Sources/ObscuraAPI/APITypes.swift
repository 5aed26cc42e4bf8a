/// The JSON bodies of Obscura's HTTP API, version 1, shared by the server and the client
/// library so that the two cannot drift apart. Binary bodies (evaluation keys, encrypted inputs
/// and results) are objects of Obscura's binary format (`ObscuraFormat` in the TFHE module) sent
/// as `application/octet-stream`. `openapi.json` in the server module documents every route.
public enum ObscuraAPI {
    /// The version prefix of every route but `/healthz` and `/metrics`.
    public static let versionPrefix = "/v1"
    /// The content type of binary uploads and downloads.
    public static let binaryContentType = "application/octet-stream"
}

/// A registered evaluation key, as `POST /v1/keys` returns it.
public struct RegisteredKey: Codable, Sendable, Equatable {
    /// The key's id: the first 32 hex digits of the SHA-256 of its bytes, so registering the
    /// same key twice gives the same id and stores it once.
    public var id: String
    /// The parameter set the key belongs to (e.g. "int4-128").
    public var parameterSet: String
    /// The size of the uploaded (seeded) key in bytes.
    public var bytes: Int

    public init(id: String, parameterSet: String, bytes: Int) {
        self.id = id
        self.parameterSet = parameterSet
        self.bytes = bytes
    }
}

/// A model the server evaluates, as `GET /v1/models` lists it.
public struct ServedModel: Codable, Sendable, Equatable {
    /// The name used in `POST /v1/models/{name}/inferences`.
    public var name: String
    /// What the model predicts.
    public var task: String
    /// The dataset it was trained on and its evaluation split.
    public var dataset: String
    /// The shape of one input record (e.g. [1, 28, 28]).
    public var inputShape: [Int]
    /// Ciphertexts per encrypted input (one per binarized value).
    public var inputCiphertexts: Int
    /// Ciphertexts per encrypted result (partial sums the client adds, or the scores' digits).
    public var outputCiphertexts: Int
    /// The evaluation backend: "tfhe-pbs", or "rlwe-bfv-latency", "rlwe-ckks-throughput", ….
    public var backend: String
    /// The parameter set the client's keys must use (a TFHE set's name, or an RLWE plan's
    /// ``parameterSet`` such as "bfv-n8192-q216-t5-latency").
    public var parameterSet: String
    /// The parameter set's estimated security in bits.
    public var securityBits: Int
    /// Bootstraps per inference; zero means the model needs no evaluation key.
    public var bootstrapsPerInference: Int
    /// Mean server time of the inferences this server has finished for the model, if any.
    public var observedLatencySeconds: Double?
    /// What an inference should take on this server: the observed mean if there is one, else
    /// the model's bootstraps times this server's measured time per bootstrap (nil until the
    /// server has evaluated anything, and for a model without bootstraps, nil until observed).
    public var expectedLatencySeconds: Double?
    /// The integer model's accuracy on its evaluation split.
    public var integerAccuracy: Double
    /// Images one job may carry (the RLWE backends: the slots of a batch in throughput mode, 1
    /// in latency mode); nil for TFHE, one record per job.
    public var batchSize: Int?
    /// What a TFHE model's result holds: "partial-sums" (the client adds them) or "scores" (each
    /// score's digits only; the model served as `NAME@scores`); nil for the RLWE backends.
    public var answer: String?

    public init(name: String, task: String, dataset: String, inputShape: [Int], inputCiphertexts: Int,
                outputCiphertexts: Int, backend: String, parameterSet: String, securityBits: Int,
                bootstrapsPerInference: Int, observedLatencySeconds: Double?, expectedLatencySeconds: Double?,
                integerAccuracy: Double, batchSize: Int? = nil, answer: String? = nil) {
        self.batchSize = batchSize
        self.answer = answer
        self.name = name
        self.task = task
        self.dataset = dataset
        self.inputShape = inputShape
        self.inputCiphertexts = inputCiphertexts
        self.outputCiphertexts = outputCiphertexts
        self.backend = backend
        self.parameterSet = parameterSet
        self.securityBits = securityBits
        self.bootstrapsPerInference = bootstrapsPerInference
        self.observedLatencySeconds = observedLatencySeconds
        self.expectedLatencySeconds = expectedLatencySeconds
        self.integerAccuracy = integerAccuracy
    }
}

/// `GET /v1/models`.
public struct ModelList: Codable, Sendable, Equatable {
    public var models: [ServedModel]
    public init(models: [ServedModel]) { self.models = models }
}

/// Where an inference job is.
public enum JobStatus: String, Codable, Sendable, CaseIterable {
    case queued, running, done, failed

    /// Whether the job will not change any more.
    public var isFinal: Bool { self == .done || self == .failed }
}

/// An inference job, as `POST /v1/models/{name}/inferences` and `GET /v1/inferences/{id}`
/// return it. Times are seconds since 1970.
public struct InferenceJob: Codable, Sendable, Equatable {
    public var id: String
    public var model: String
    /// The evaluation key the job runs with; null for a model without bootstraps, or once the
    /// key has been deleted after the job finished.
    public var keyId: String?
    public var status: JobStatus
    /// The fraction of the job's bootstraps done (0 to 1; 1 once done).
    public var progress: Double
    /// The layer being evaluated while running.
    public var stage: String?
    /// Why the job failed.
    public var error: String?
    public var createdAt: Double
    public var startedAt: Double?
    public var finishedAt: Double?
    /// Server time spent evaluating (not queueing).
    public var evaluationSeconds: Double?
    /// Bootstraps the job takes.
    public var bootstraps: Int
    /// How often the job was started (more than once after a restart interrupted it).
    public var attempts: Int
    /// When the server deletes the finished job with its input and result (seconds since 1970);
    /// nil while it runs, or when the server keeps results until they are deleted.
    public var expiresAt: Double?

    public init(id: String, model: String, keyId: String?, status: JobStatus, progress: Double, stage: String?,
                error: String?, createdAt: Double, startedAt: Double?, finishedAt: Double?, evaluationSeconds: Double?,
                bootstraps: Int, attempts: Int, expiresAt: Double? = nil) {
        self.id = id
        self.model = model
        self.keyId = keyId
        self.status = status
        self.progress = progress
        self.stage = stage
        self.error = error
        self.createdAt = createdAt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.evaluationSeconds = evaluationSeconds
        self.bootstraps = bootstraps
        self.attempts = attempts
        self.expiresAt = expiresAt
    }
}

/// The body of every 4xx and 5xx answer.
public struct APIErrorBody: Codable, Sendable, Equatable {
    /// A stable machine-readable code, e.g. "unknown_key".
    public var error: String
    /// What was wrong, for a person.
    public var message: String

    public init(error: String, message: String) {
        self.error = error
        self.message = message
    }
}

/// `GET /healthz`.
public struct HealthReport: Codable, Sendable, Equatable {
    public var status: String
    public var models: Int
    public var queued: Int
    public var running: Int

    public init(status: String, models: Int, queued: Int, running: Int) {
        self.status = status
        self.models = models
        self.queued = queued
        self.running = running
    }
}

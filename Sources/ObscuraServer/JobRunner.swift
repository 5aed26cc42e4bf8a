import InferenceBackend
import Dispatch
import Foundation
import Logging
import ObscuraAPI
import PrivateInference
import SIMDInference
import TFHE

/// Runs accepted jobs: claims the oldest claimable job from the store under a lease, loads its
/// input and its client's evaluation key, evaluates the plan off Swift's cooperative threads (an
/// evaluation keeps every core busy for seconds, which must not stall the HTTP handlers),
/// renewing the lease as it goes, and stores the result if the lease is still its own. The same
/// runner serves a lone server's workers and `obscura worker` processes beside a PostgreSQL store.
struct JobRunner: Sendable {
    let models: ModelRegistry
    let store: ServiceStore
    let signal: WorkSignal
    let progress: ProgressBoard
    let keys: EvaluationKeyCache
    let simdEvaluators: SIMDEvaluatorCache
    let metrics: ServiceMetrics
    /// Where a failure's details go: the job's owner sees only a generic message.
    let logger: Logger
    /// How long finished jobs are kept (``ServerConfiguration/resultRetention``).
    let retention: Double?
    let leases: LeaseTiming

    /// A job claimed this often and never finished (its workers died with it) fails instead of
    /// taking down another worker.
    static let maxAttempts = 3

    /// Runs jobs as `worker` until the signal closes.
    func work(worker: String) async {
        // In a fleet, a job of a model this process does not serve waits for a worker that
        // does; a lone server takes every job, and fails those of models it no longer serves.
        let claimable = store.isShared ? models.entries.map(\.listing.name) : nil
        while !(await signal.isClosed) {
            let claimed: InferenceJob?
            do {
                claimed = try await store.claimNext(worker: worker, models: claimable, leaseSeconds: leases.seconds)
            } catch {
                logger.error("\(worker) could not claim a job: \(String(describing: error))")
                claimed = nil
            }
            guard let job = claimed else {
                await signal.wait(upTo: Duration(seconds: leases.pollInterval))
                continue
            }
            await signal.started()
            let outcome = await run(job, worker: worker)
            await signal.finished()
            metrics.jobFinished(model: job.model, succeeded: outcome.succeeded, bootstraps: outcome.succeeded ? job.bootstraps : 0, seconds: outcome.seconds)
            progress.remove(job.id)
        }
    }

    /// Runs one claimed job and records its outcome; never throws: a failure is recorded (or,
    /// when even that fails, left to the lease's end and another attempt).
    private func run(_ claimed: InferenceJob, worker: String) async -> (succeeded: Bool, seconds: Double) {
        var job = claimed
        let id = job.id
        let heartbeat = Task { await renewLease(of: id, worker: worker) }
        defer { heartbeat.cancel() }
        let outcome: Result<(bytes: [UInt8], seconds: Double), Error>
        if job.attempts > Self.maxAttempts {
            outcome = .failure(APIError.conflict("interrupted", "the evaluation was interrupted \(job.attempts - 1) times"))
        } else {
            do { outcome = .success(try await evaluate(job)) } catch { outcome = .failure(error) }
        }
        let now = Date().timeIntervalSince1970
        job.finishedAt = now
        job.expiresAt = retention.map { now + $0 }
        job.stage = nil
        let result: [UInt8]?
        switch outcome {
        case .success(let evaluation):
            job.status = .done
            job.progress = 1
            job.evaluationSeconds = evaluation.seconds
            result = evaluation.bytes
        case .failure(let error):
            job.status = .failed
            result = nil
            // An API error's message is written for clients; anything else stays in the log.
            if let apiError = error as? APIError {
                job.error = apiError.message
            } else {
                job.error = "the evaluation failed on the server (see its log for job \(id))"
                logger.error("job \(id) (\(job.model)) failed: \(String(describing: error))")
            }
        }
        do {
            guard try await store.complete(job, result: result, worker: worker) else {
                logger.warning("job \(id): the lease passed to another worker; this outcome is dropped")
                return (false, 0)
            }
        } catch {
            logger.error("job \(id): recording the outcome failed (another attempt follows the lease's end): \(String(describing: error))")
            return (false, 0)
        }
        return (job.status == .done, job.evaluationSeconds ?? 0)
    }

    /// Renews the job's lease every third of its length, with the progress so far, until
    /// cancelled or until the lease is lost.
    private func renewLease(of id: String, worker: String) async {
        while !Task.isCancelled {
            try? await Task.sleep(for: Duration(seconds: leases.seconds / 3))
            if Task.isCancelled { return }
            let current = progress.current(id)
            do {
                guard try await store.renewLease(id: id, worker: worker, leaseSeconds: leases.seconds,
                                                 progress: current?.fraction ?? 0, stage: current?.stage) else {
                    logger.warning("job \(id): \(worker) lost its lease")
                    return
                }
            } catch {
                logger.error("job \(id): renewing the lease failed: \(String(describing: error))")
            }
        }
    }

    /// Evaluates a job's model on its input with its key: the result's bytes and the seconds taken.
    private func evaluate(_ job: InferenceJob) async throws -> (bytes: [UInt8], seconds: Double) {
        let id = job.id
        guard let entry = models.entry(named: job.model) else { throw APIError.notFound("unknown_model", "model \(job.model) is no longer served") }
        let input = try store.inputBytes(id: id)
        // The backend's server half: the key (or keyed evaluator) comes from each backend's cache.
        let server: any InferenceBackendServer
        switch entry.backend {
        case .tfhe(let plan):
            let key = try await job.keyId.asyncMap { try await keys.key(id: $0, parameters: plan.parameters) }
            server = try PBSInferenceEvaluator(plan: plan, key: key)
        case .simd(let plan):
            guard let keyID = job.keyId else { throw APIError.badRequest("missing_key", "model \(job.model) needs an evaluation key") }
            server = try await simdEvaluators.evaluator(id: keyID, model: job.model, plan: plan)
        }
        let board = progress
        board.start(id, totalBootstraps: server.progressUnits)
        return try await Self.offCooperativePool {
            let start = DispatchTime.now().uptimeNanoseconds
            let result = try server.answer(upload: input) { stage, done, total in board.report(id, layer: stage, done: done, total: total) }
            return (result, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
    }

    /// Runs blocking work on a Dispatch thread and awaits its result.
    static func offCooperativePool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global(qos: .userInitiated).async {
                continuation.resume(with: Result { try work() })
            }
        }
    }
}

/// How long a worker's claim on a job lasts unrenewed, and how often an idle worker looks for
/// jobs stored by other processes.
public struct LeaseTiming: Sendable, Equatable {
    /// Seconds a lease lasts; the worker renews it every third of that. A dead worker's job is
    /// claimed again this long after its last renewal.
    public var seconds: Double
    /// Seconds an idle worker waits before looking again (a job stored by this process wakes it at once).
    public var pollInterval: Double

    public init(seconds: Double = 30, pollInterval: Double = 1) {
        self.seconds = max(0.3, seconds)
        self.pollInterval = max(0.05, pollInterval)
    }

    /// The timing for a store: a lone server's own submissions wake its workers, so they look
    /// again only every 5 s; a fleet's jobs come from other processes, so its workers look every 0.5 s.
    public static func standard(for database: DatabaseLocation, seconds: Double = 30) -> LeaseTiming {
        LeaseTiming(seconds: seconds, pollInterval: database == .sqlite ? 5 : 0.5)
    }
}

/// Names of workers, unique in a fleet: the host, the process, a random tag of the process
/// (containers that share a host name all run as process 1) and the worker's index in it.
enum WorkerName {
    private static let processTag = UUID().uuidString.prefix(8).lowercased()

    static func make(_ index: Int) -> String {
        "\(ProcessInfo.processInfo.hostName)/\(ProcessInfo.processInfo.processIdentifier)/\(processTag)/\(index)"
    }
}

extension Duration {
    fileprivate init(seconds: Double) { self = .milliseconds(Int64(seconds * 1000)) }
}

/// RLWE evaluators built from clients' keys (reading a BFV latency key and encoding the plan's
/// plaintexts takes seconds), the most recently used first, by key and model.
actor SIMDEvaluatorCache {
    private let store: ServiceStore
    private let capacity: Int
    private var entries: [(id: String, model: String, evaluator: SIMDEvaluator)] = []

    init(store: ServiceStore, capacity: Int) {
        self.store = store
        self.capacity = max(1, capacity)
    }

    /// Builds the evaluator from untrusted key bytes (throwing if they are not keys for `plan`)
    /// and keeps it.
    func insert(id: String, model: String, plan: SIMDPlan, keyBytes: [UInt8]) async throws {
        let evaluator = try await JobRunner.offCooperativePool { try SIMDEvaluator(plan: plan, keyBytes: keyBytes) }
        keep(id: id, model: model, evaluator)
    }

    /// The evaluator of a registered key for `model`, from the cache or the stored key.
    func evaluator(id: String, model: String, plan: SIMDPlan) async throws -> SIMDEvaluator {
        if let index = entries.firstIndex(where: { $0.id == id && $0.model == model }) {
            let entry = entries.remove(at: index)
            entries.insert(entry, at: 0)
            return entry.evaluator
        }
        let bytes = try store.keyBytes(id: id)
        let evaluator = try await JobRunner.offCooperativePool { try SIMDEvaluator(plan: plan, keyBytes: bytes) }
        keep(id: id, model: model, evaluator)
        return evaluator
    }

    /// Forgets every evaluator of a deleted key.
    func remove(id: String) {
        entries.removeAll { $0.id == id }
    }

    private func keep(id: String, model: String, _ evaluator: SIMDEvaluator) {
        entries.removeAll { $0.id == id && $0.model == model }
        entries.insert((id, model, evaluator), at: 0)
        if entries.count > capacity { entries.removeLast() }
    }
}

/// Evaluation keys expanded to the Fourier domain, the most recently used first: expanding a
/// key costs about as much as a hundred bootstraps, and a client usually sends several inputs.
actor EvaluationKeyCache {
    private let store: ServiceStore
    private let capacity: Int
    private var entries: [(id: String, key: EvaluationKey)] = []

    init(store: ServiceStore, capacity: Int) {
        self.store = store
        self.capacity = max(1, capacity)
    }

    /// The key with this id, expanded, checked against the parameter set the plan needs.
    func key(id: String, parameters: TFHEParameters) async throws -> EvaluationKey {
        if let index = entries.firstIndex(where: { $0.id == id }) {
            let entry = entries.remove(at: index)
            entries.insert(entry, at: 0)
            return entry.key
        }
        let bytes = try store.keyBytes(id: id)
        let key = try await JobRunner.offCooperativePool {
            EvaluationKey(try CompressedEvaluationKey(deserializing: bytes, expecting: parameters))
        }
        entries.insert((id, key), at: 0)
        if entries.count > capacity { entries.removeLast() }
        return key
    }

    /// Forgets a deleted key.
    func remove(id: String) {
        entries.removeAll { $0.id == id }
    }
}

/// The progress of running jobs, updated from the evaluator's worker threads and read by
/// `GET /v1/inferences/{id}`: a lock, not an actor, because the reports come from Dispatch threads.
final class ProgressBoard: @unchecked Sendable {
    private struct Entry {
        var totalBootstraps: Int
        var finishedLayers = 0
        var fraction = 0.0
        var stage: String?
    }

    private let lock = NSLock()
    private var entries: [String: Entry] = [:]

    func start(_ id: String, totalBootstraps: Int) {
        lock.withLock { entries[id] = Entry(totalBootstraps: totalBootstraps) }
    }

    /// A layer's progress: `done` of its `total` outputs.
    func report(_ id: String, layer: String, done: Int, total: Int) {
        lock.withLock {
            guard var entry = entries[id] else { return }
            if entry.totalBootstraps > 0 {
                entry.fraction = min(1, Double(entry.finishedLayers + done) / Double(entry.totalBootstraps))
            }
            if done == total { entry.finishedLayers += total }
            entry.stage = layer
            entries[id] = entry
        }
    }

    /// The running job's fraction done and stage.
    func current(_ id: String) -> (fraction: Double, stage: String?)? {
        lock.withLock { entries[id].map { ($0.fraction, $0.stage) } }
    }

    func remove(_ id: String) {
        lock.withLock { _ = entries.removeValue(forKey: id) }
    }
}

extension Optional {
    /// `map` with an async transform.
    func asyncMap<T>(_ transform: (Wrapped) async throws -> T) async rethrows -> T? {
        switch self {
        case .some(let value): try await transform(value)
        case .none: nil
        }
    }
}

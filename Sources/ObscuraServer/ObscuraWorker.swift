import Logging
import ObscuraAPI
import ServiceLifecycle

/// One process of a fleet's workers (`obscura worker`): it serves no HTTP, and runs the jobs
/// that the API servers stored in a shared PostgreSQL store, claiming each under a lease
/// (``ServiceStore/claimNext(worker:leaseSeconds:)``). Kill it at any moment: its job's lease
/// ends and another worker runs the job again from its stored input.
public struct ObscuraWorker: Sendable {
    public let models: ModelRegistry
    public let store: ServiceStore
    let signal = WorkSignal()
    let runner: JobRunner
    let workers: Int
    let logger: Logger

    /// - Parameters:
    ///   - dataDirectory: the fleet's shared blob folder (the API servers' `--data-dir`).
    ///   - workers: jobs evaluated at once in this process (each already uses every core).
    ///
    /// The jobs it finishes carry no expiry: the API servers' retention stamps them.
    public init(dataDirectory: String, database: PostgresAddress, models: ModelRegistry, workers: Int = 1,
                leases: LeaseTiming? = nil, cachedKeys: Int = 4,
                logLevel: Logger.Level = .info) async throws {
        self.models = models
        store = try await ServiceStore(directory: dataDirectory, database: .postgres(database))
        var logger = Logger(label: "obscura-worker")
        logger.logLevel = logLevel
        self.logger = logger
        self.workers = max(1, workers)
        runner = JobRunner(models: models, store: store, signal: signal, progress: ProgressBoard(),
                           keys: EvaluationKeyCache(store: store, capacity: cachedKeys),
                           simdEvaluators: SIMDEvaluatorCache(store: store, capacity: cachedKeys),
                           metrics: ServiceMetrics(), logger: logger, retention: nil, leases: leases ?? .standard(for: .postgres(database)))
    }

    /// Runs jobs until the process gets SIGTERM or SIGINT; a job in hand is finished first.
    public func run() async throws {
        try await ServiceGroup(configuration: .init(services: [WorkerService(worker: self)],
                                                    gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)).run()
    }

    private struct WorkerService: Service {
        let worker: ObscuraWorker

        func run() async throws {
            let (runner, signal) = (worker.runner, worker.signal)
            await withGracefulShutdownHandler {
                await withTaskGroup(of: Void.self) { group in
                    for index in 0..<worker.workers { group.addTask { await runner.work(worker: WorkerName.make(index)) } }
                }
            } onGracefulShutdown: {
                Task { await signal.close() }
            }
        }
    }
}

import Crypto
import Foundation
import Hummingbird
import HummingbirdAuth
import HummingbirdCore
import Logging
import ObscuraAPI
import PrivateInference
import RLWE
import ServiceLifecycle
import SIMDInference
import TFHE

/// The private inference service: an HTTP API (Hummingbird) over the models of a
/// ``ModelRegistry``, a store for what must survive a restart (SQLite by default; PostgreSQL for a
/// fleet of API servers and `obscura worker` processes), a bounded job queue in that store
/// and workers that evaluate on ciphertexts with the clients' evaluation keys. Requests carry an
/// API token (``ServerConfiguration/Access``): each token owns its keys and jobs, within its
/// ``Quotas``, and never sees another's. It has no route, type or code path that accepts a secret
/// key: the binary readers refuse one by its magic bytes.
public struct ObscuraServer: Sendable {
    /// Where it listens and what it accepts.
    public let configuration: ServerConfiguration
    /// The models it serves.
    public let models: ModelRegistry
    /// Its persistent state.
    public let store: ServiceStore
    let signal = WorkSignal()
    let progress = ProgressBoard()
    let metrics = ServiceMetrics()
    let uploads: UploadSlots
    let runner: JobRunner
    let logger: Logger
    /// The largest evaluation key body read (see ``ServerConfiguration/maxKeyBytes``).
    let keyByteLimit: Int

    /// Opens the store (the configured data directory and database). A lone server (SQLite)
    /// re-queues every job that a previous run left running; they run again from their stored
    /// input. With PostgreSQL a job whose worker died is claimed again when its lease ends.
    public init(configuration: ServerConfiguration, models: ModelRegistry, logLevel: Logger.Level = .info) async throws {
        guard configuration.workers >= 1 || configuration.database != .sqlite else {
            throw ServerConfigurationError("a server on SQLite needs at least one worker: only a PostgreSQL store has `obscura worker` processes")
        }
        self.configuration = configuration
        self.models = models
        store = try await ServiceStore(directory: configuration.dataDirectory, database: configuration.database)
        var logger = Logger(label: "obscura")
        logger.logLevel = logLevel
        runner = JobRunner(models: models, store: store, signal: signal, progress: progress,
                           keys: EvaluationKeyCache(store: store, capacity: configuration.cachedKeys),
                           simdEvaluators: SIMDEvaluatorCache(store: store, capacity: configuration.cachedKeys), metrics: metrics, logger: logger,
                           retention: configuration.resultRetention, leases: configuration.leases)
        self.logger = logger
        keyByteLimit = configuration.keyByteLimit(largestServedKey: models.largestEvaluationKey)
        // An open server has one owner: the per-owner cap would only shrink the total.
        uploads = UploadSlots(capacity: configuration.maxUploads,
                              perOwner: configuration.access == .open ? configuration.maxUploads : configuration.maxUploadsPerOwner)
        try await store.setExpiry(retention: configuration.resultRetention)
        try store.removeStagedUploads()
        for job in try await store.requeueInterrupted() {
            logger.notice("job \(job.id) (\(job.model)) is queued: it runs after the restart")
        }
    }

    /// Serves until the process gets SIGTERM or SIGINT; `onListening` receives the bound port
    /// (useful with port 0). A job being evaluated at shutdown finishes first; queued jobs stay
    /// queued in the store and run after the next start.
    public func run(onListening: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        try await serve(ServiceGroup(configuration: .init(services: [makeApplication(onListening: onListening)],
                                                          gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)))
    }

    /// Runs the HTTP service group beside the workers; when the group ends, the workers stop
    /// taking jobs.
    func serve(_ services: ServiceGroup) async throws {
        let (signal, runner, workers) = (signal, runner, configuration.workers)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<workers { group.addTask { await runner.work(worker: WorkerName.make(index)) } }
            if configuration.resultRetention != nil {
                group.addTask { await self.sweepExpiredJobs() }
            }
            group.addTask {
                do {
                    try await services.run()
                } catch {
                    await signal.close()
                    throw error
                }
                await signal.close()
            }
            try await group.waitForAll()
        }
    }

    /// Deletes finished jobs whose expiry has passed (their rows, inputs and results), every
    /// ``ServerConfiguration/sweepInterval``, until the server stops taking work.
    func sweepExpiredJobs() async {
        let interval = Duration.milliseconds(Int(configuration.sweepInterval * 1000))
        // Naps of at most half a second, so that a stopping server is not held up by a long interval.
        let nap = min(interval, .milliseconds(500))
        var nextSweep = ContinuousClock.now
        while !(await signal.isClosed) {
            if ContinuousClock.now >= nextSweep {
                nextSweep = .now + interval
                do {
                    // Jobs that `obscura worker` processes finished carry no expiry: this server's retention applies.
                    if store.isShared { try await store.setExpiry(retention: configuration.resultRetention, onlyUnset: true) }
                    for id in try await store.expiredJobs(now: Date().timeIntervalSince1970) {
                        if try await store.deleteJob(id: id, owner: nil) == .deleted { logger.info("deleted expired inference \(id)") }
                    }
                } catch {
                    logger.error("sweeping expired inferences failed: \(String(describing: error))")
                }
            }
            try? await Task.sleep(for: nap)
        }
    }

    func makeApplication(onListening: @escaping @Sendable (Int) async -> Void) -> some Service {
        let port = configuration.port
        return Application(
            router: makeRouter(),
            server: .http1(configuration: .init(additionalChannelHandlers: [CloseAfterRefusalHandler()],
                                                idleTimeout: .milliseconds(Int64(configuration.idleLimit / .milliseconds(1))))),
            configuration: .init(address: .hostname(configuration.host, port: port), serverName: "obscura",
                                 availableConnectionsDelegate: MaximumAvailableConnections(configuration.maxConnections, logger: logger)),
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? port) },
            logger: logger)
    }

    /// The routes of API version 1, as `openapi.json` documents them.
    enum Route: CaseIterable {
        case health, metrics, openAPI, models, registerKey, deleteKey, submit, job, deleteJob, result

        var method: HTTPRequest.Method {
            switch self {
            case .registerKey, .submit: .post
            case .health, .metrics, .openAPI, .models, .job, .result: .get
            case .deleteKey, .deleteJob: .delete
            }
        }

        var template: String {
            switch self {
            case .health: "/healthz"
            case .metrics: "/metrics"
            case .openAPI: "/v1/openapi.json"
            case .models: "/v1/models"
            case .registerKey: "/v1/keys"
            case .deleteKey: "/v1/keys/{id}"
            case .submit: "/v1/models/{name}/inferences"
            case .job, .deleteJob: "/v1/inferences/{id}"
            case .result: "/v1/inferences/{id}/result"
            }
        }
    }

    /// Method and path template of every route.
    static var routes: [(method: HTTPRequest.Method, template: String)] { Route.allCases.map { ($0.method, $0.template) } }

    /// The router: each route with its handler.
    func makeRouter() -> Router<ObscuraRequestContext> {
        let router = Router(context: ObscuraRequestContext.self)
        router.add(middleware: JSONErrorMiddleware(routes: Self.routes))
        router.add(middleware: OwnerAuthenticator(access: configuration.access, store: store))
        for route in Route.allCases {
            router.on(RouterPath(route.template), method: route.method) { request, context in
                let start = ContinuousClock.now
                do {
                    let response = try await handle(route, request, context)
                    metrics.requestAnswered(route: route.template, method: route.method.rawValue, status: response.status.code, since: start)
                    return response
                } catch {
                    let status = (error as? APIError)?.status ?? (error as? any HTTPResponseError)?.status ?? .internalServerError
                    metrics.requestAnswered(route: route.template, method: route.method.rawValue, status: status.code, since: start)
                    throw error
                }
            }
        }
        return router
    }

    /// Dispatches a request of a documented route. The routes that touch keys and jobs act for
    /// the request's owner (401 without one); the others show nothing of any owner's. What they
    /// log goes through the request's logger, which carries Hummingbird's request id.
    private func handle(_ route: Route, _ request: Request, _ context: ObscuraRequestContext) async throws -> Response {
        let log = context.logger
        switch route {
        case .health: return try json(await health())
        case .metrics: return try await metricsExposition()
        case .openAPI: return try openAPIDocument()
        case .models: return try json(await modelList())
        case .registerKey:
            let owner = try context.owner()
            return try await uploads.withSlot(for: owner) { try await registerKey(request, owner: owner, log: log) }
        case .submit:
            let (owner, name) = (try context.owner(), try context.parameters.require("name"))
            return try await uploads.withSlot(for: owner) { try await submit(request, model: name, owner: owner, log: log) }
        case .job: return try json(await job(id: try context.parameters.require("id"), owner: context.owner()))
        case .deleteKey: return try await deleteKey(id: try context.parameters.require("id"), owner: context.owner(), log: log)
        case .deleteJob: return try await deleteJob(id: try context.parameters.require("id"), owner: context.owner(), log: log)
        case .result: return try await result(id: try context.parameters.require("id"), owner: context.owner())
        }
    }

    // MARK: Routes

    func health() async -> HealthReport {
        // The counts are the store's: with PostgreSQL, the whole fleet's.
        let counts = (try? await store.statistics().counts) ?? [:]
        return HealthReport(status: "ok", models: models.entries.count, queued: counts[.queued] ?? 0, running: counts[.running] ?? 0)
    }

    func modelList() async throws -> ModelList {
        let statistics = try await store.statistics()
        let means = statistics.meanSeconds
        let (bootstraps, seconds) = statistics.bootstrapTotals
        let secondsPerBootstrap = bootstraps > 0 ? seconds / Double(bootstraps) : nil
        return ModelList(models: models.entries.map { entry in
            var listing = entry.listing
            listing.observedLatencySeconds = means[listing.name]
            listing.expectedLatencySeconds = means[listing.name]
                ?? (listing.bootstrapsPerInference > 0 ? secondsPerBootstrap.map { $0 * Double(listing.bootstrapsPerInference) } : nil)
            return listing
        })
    }

    /// `POST /v1/keys[?model=NAME]`: an evaluation key in the binary format: a seeded TFHE key,
    /// or an RLWE model's keys (``SIMDWire``, read for the model's plan, so `model` is required).
    /// Refused: a secret key (by its magic bytes, before anything else is read), the insecure
    /// test sets, malformed or oversized bytes, with `model` a key of another parameter set, and a
    /// key beyond the owner's quota of stored key bytes (429). The id hashes the owner with the
    /// bytes, so two owners never share a key row.
    func registerKey(_ request: Request, owner: Owner, log: Logger) async throws -> Response {
        let model = request.uri.queryParameters.get("model")
        // A named model's keys have an exact size: nothing larger is received.
        let limit = model.flatMap { models.entry(named: $0)?.evaluationKeyBytes } ?? keyByteLimit
        let upload = try await receive(request, limit: limit, hashPrefix: owner == .anonymous ? [] : Array(owner.id.utf8) + [0])
        defer { upload.discard() }
        let id = upload.digest.prefix(16).hex
        // A new key that cannot fit the owner's quota is refused before it is parsed (or an RLWE
        // evaluator built from it); the store checks again as it stores it.
        if try await store.key(id: id, owner: owner) == nil {
            let stored = try await store.storedKeyBytes(owner: owner)
            let quota = configuration.quotas.storedKeyBytes
            guard stored <= quota, upload.byteCount <= quota - stored else { throw keyQuotaExceeded(bytes: upload.byteCount, stored: stored) }
        }
        let bytes = try upload.bytes()
        let secretKeyRefused = APIError.badRequest("secret_key_refused", "this is a secret key: it must never leave the client; send the evaluation key")
        guard !bytes.starts(with: RlweFormat.secretMagic) else { throw secretKeyRefused }
        let parameterSet: String
        if SIMDWire.kind(of: bytes) != nil {
            guard let model else {
                throw APIError.badRequest("missing_model", "RLWE evaluation keys are read for a model's plan: pass ?model=NAME")
            }
            let entry = try servedModel(model)
            guard case .simd(let plan) = entry.backend else { throw keyModelMismatch("an RLWE plan", entry) }
            guard plan.securityBits >= 128 else {
                throw APIError.badRequest("insecure_parameters", "parameter set \(plan.parameterSetName) is for tests only and is refused")
            }
            // Reading the keys builds the evaluator the jobs need: keep it.
            do {
                try await runner.simdEvaluators.insert(id: id, model: model, plan: plan, keyBytes: bytes)
            } catch SIMDEvaluator.EvaluationError.rlwe(.secretKeyNotAccepted) {
                throw secretKeyRefused
            } catch {
                throw APIError.badRequest("invalid_key", "not valid evaluation keys for \(model): \(error)")
            }
            parameterSet = plan.parameterSetName
        } else {
            let key: CompressedEvaluationKey
            do {
                key = try CompressedEvaluationKey(deserializing: bytes, limit: keyByteLimit)
            } catch .secretKeyNotAccepted {
                throw secretKeyRefused
            } catch {
                throw APIError.badRequest("invalid_key", "not a valid evaluation key: \(error)")
            }
            guard !key.parameters.isInsecureTestOnly else {
                throw APIError.badRequest("insecure_parameters", "parameter set \(key.parameters.name) is for tests only and is refused")
            }
            if let model {
                let entry = try servedModel(model)
                guard entry.parameterSet == key.parameters.name else { throw keyModelMismatch(key.parameters.name, entry) }
            }
            parameterSet = key.parameters.name
        }
        let registered = RegisteredKey(id: id, parameterSet: parameterSet, bytes: bytes.count)
        switch try await store.register(registered, upload: upload, owner: owner, quota: configuration.quotas.storedKeyBytes) {
        case .alreadyRegistered:
            return try json(registered, status: .ok)
        case .overQuota(let stored):
            await runner.simdEvaluators.remove(id: id)
            throw keyQuotaExceeded(bytes: bytes.count, stored: stored)
        case .stored:
            log.info("registered evaluation key \(id) (\(parameterSet), \(bytes.count) bytes) for \(owner)")
            return try json(registered, status: .created)
        }
    }

    /// `DELETE /v1/keys/{id}`: the key's bytes and row, and the server's expanded copies; 409 while
    /// a queued or running job still needs it.
    func deleteKey(id: String, owner: Owner, log: Logger) async throws -> Response {
        switch try await store.deleteKey(id: id, owner: owner) {
        case .notFound:
            throw APIError.notFound("unknown_key", "no evaluation key \(id) is registered")
        case .unfinished(let jobs):
            throw APIError.conflict("key_in_use", "\(jobs) unfinished inference(s) still use key \(id): delete it once they have finished")
        case .deleted:
            await runner.keys.remove(id: id)
            await runner.simdEvaluators.remove(id: id)
            log.info("deleted evaluation key \(id) for \(owner)")
            return Response(status: .noContent)
        }
    }

    /// `DELETE /v1/inferences/{id}`: a finished job's row, encrypted input and result; 409 while it
    /// is queued or running.
    func deleteJob(id: String, owner: Owner, log: Logger) async throws -> Response {
        switch try await store.deleteJob(id: id, owner: owner) {
        case .notFound:
            throw APIError.notFound("unknown_job", "no inference \(id)")
        case .unfinished:
            throw APIError.conflict("not_finished", "inference \(id) has not finished: delete it once it is done or failed")
        case .deleted:
            log.info("deleted inference \(id) for \(owner)")
            return Response(status: .noContent)
        }
    }

    /// `POST /v1/models/{name}/inferences?key=ID`: an encrypted input: a list of seeded TFHE
    /// ciphertexts, or an RLWE model's ``SIMDWire`` inputs (a batch of images, or one).
    /// Everything is checked before a slot is taken and anything is stored; the owner's quotas
    /// (jobs queued or running, jobs an hour) are checked as the job is stored.
    func submit(_ request: Request, model name: String, owner: Owner, log: Logger) async throws -> Response {
        let entry = try servedModel(name)
        let keyID = request.uri.queryParameters.get("key")
        if let keyID {
            guard let key = try await store.key(id: keyID, owner: owner) else { throw APIError.notFound("unknown_key", "no evaluation key \(keyID) is registered") }
            guard key.parameterSet == entry.parameterSet else { throw keyModelMismatch(key.parameterSet, entry) }
        } else if entry.needsEvaluationKey {
            throw APIError.badRequest("missing_key", "model \(name) needs the client's evaluation key: register it and pass ?key=ID")
        }
        let limit = switch entry.backend {
        case .tfhe: configuration.maxInputBytes
        case .simd(let plan): plan.uploadBytes   // exact: nothing larger is received
        }
        let upload = try await receive(request, limit: limit)
        defer { upload.discard() }
        let input = try upload.bytes()
        let bootstraps: Int
        switch entry.backend {
        case .tfhe(let plan):
            let ciphertexts: [SeededLweCiphertext]
            do {
                ciphertexts = try [SeededLweCiphertext](deserializing: input, expecting: plan.parameters, limit: configuration.maxInputBytes)
            } catch {
                throw APIError.badRequest("invalid_input", "not an encrypted input for \(name) (\(plan.parameters.name)): \(error)")
            }
            guard ciphertexts.count == plan.inputCount else {
                throw APIError.badRequest("wrong_input_size", "model \(name) takes \(plan.inputCount) ciphertexts, got \(ciphertexts.count)")
            }
            guard ciphertexts.allSatisfy({ $0.dimension == plan.inputKey.dimension(plan.parameters) }) else {
                throw APIError.badRequest("wrong_input_key", "model \(name) takes inputs encrypted under the \(plan.inputKey) LWE key")
            }
            bootstraps = plan.bootstrapsPerInference
        case .simd(let plan):
            do {
                try await JobRunner.offCooperativePool { try SIMDEvaluator.check(upload: input, plan: plan) }
            } catch {
                throw APIError.badRequest("invalid_input", "not an encrypted input for \(name) (\(plan.parameterSetName)): \(error)")
            }
            bootstraps = 0
        }
        let job = InferenceJob(id: UUID().uuidString.lowercased(), model: name, keyId: keyID, status: .queued, progress: 0, stage: nil,
                               error: nil, createdAt: Date().timeIntervalSince1970, startedAt: nil, finishedAt: nil,
                               evaluationSeconds: nil, bootstraps: bootstraps, attempts: 0)
        let admission: ServiceStore.Admission
        do {
            admission = try await store.insert(job, input: upload, owner: owner, quotas: configuration.quotas,
                                               capacity: configuration.queueCapacity)
        } catch {
            // The key may have been deleted since it was checked above.
            if let keyID, try await store.key(id: keyID, owner: owner) == nil {
                throw APIError.notFound("unknown_key", "no evaluation key \(keyID) is registered")
            }
            throw error
        }
        switch admission {
        case .admitted: break
        case .queueFull(let capacity):
            metrics.submissionRefused(.queueFull)
            throw APIError.queueFull(capacity: capacity, retryAfter: 2)
        case .tooManyUnfinished(let count):
            metrics.submissionRefused(.quota)
            // A slot frees when one of them finishes: about one evaluation of this model.
            let seconds = try await store.statistics().meanSeconds[name] ?? 5
            throw APIError.quotaExceeded("\(count) of your inferences are queued or running, the most allowed at once: wait for one to finish",
                                         retryAfter: max(1, Int(seconds.rounded(.up))))
        case .tooManyThisHour(let retryAfter):
            metrics.submissionRefused(.quota)
            throw APIError.quotaExceeded("the quota of \(configuration.quotas.jobsPerHour) inferences an hour is used up; retry after \(retryAfter) s",
                                         retryAfter: retryAfter)
        }
        await signal.notify()
        log.info("accepted inference \(job.id) (\(name)) for \(owner)")
        var response = try json(job, status: .accepted)
        response.headers[.location] = "/v1/inferences/\(job.id)"
        return response
    }

    /// The owner's job with its live progress.
    func job(id: String, owner: Owner) async throws -> InferenceJob {
        guard var job = try await store.job(id: id, owner: owner) else { throw APIError.notFound("unknown_job", "no inference \(id)") }
        // A job this process runs has its live progress here; one that another worker runs has
        // the progress of that worker's last lease renewal in its row.
        if job.status == .running, let current = progress.current(id) {
            job.progress = current.fraction
            job.stage = current.stage
        }
        // Finished by a worker of another process, before the sweeper stamped it.
        if job.status.isFinal, job.expiresAt == nil, let retention = configuration.resultRetention, let finishedAt = job.finishedAt {
            job.expiresAt = finishedAt + retention
        }
        return job
    }

    /// The encrypted scores of a finished job.
    func result(id: String, owner: Owner) async throws -> Response {
        let job = try await job(id: id, owner: owner)
        switch job.status {
        case .done:
            // The job may have been deleted or have expired since it was read.
            guard let bytes = try? store.resultBytes(id: id) else { throw APIError.notFound("unknown_job", "no inference \(id)") }
            return Response(status: .ok, headers: [.contentType: ObscuraAPI.binaryContentType],
                            body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
        case .failed:
            throw APIError.conflict("job_failed", "inference \(id) failed: \(job.error ?? "unknown error")")
        case .queued, .running:
            throw APIError.conflict("not_finished", "inference \(id) is \(job.status.rawValue) (\(Int(job.progress * 100))% done)")
        }
    }

    /// Prometheus text exposition (``ServiceMetrics``).
    func metricsExposition() async throws -> Response {
        let stored = try await store.statistics().counts
        let text = await metrics.exposition(queued: stored[.queued] ?? 0, running: stored[.running] ?? 0,
                                            capacity: configuration.queueCapacity, stored: stored)
        return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                        body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }

    /// The OpenAPI document of this API.
    func openAPIDocument() throws -> Response {
        guard let url = Bundle.module.url(forResource: "openapi", withExtension: "json") else {
            throw APIError(status: .internalServerError, code: "internal", message: "openapi.json is missing from the build")
        }
        return Response(status: .ok, headers: [.contentType: "application/json"],
                        body: ResponseBody(byteBuffer: ByteBuffer(bytes: try Data(contentsOf: url))))
    }

    // MARK: Helpers

    /// A request body streamed into the store's staging folder within `limit` bytes and the
    /// configured upload time (``ServiceStore/stage(_:declaredLength:limit:deadline:hashPrefix:)``).
    private func receive(_ request: Request, limit: Int, hashPrefix: [UInt8] = []) async throws -> ServiceStore.StagedUpload {
        try await store.stage(request.body, declaredLength: request.headers[.contentLength].flatMap { Int($0) }, limit: limit,
                              deadline: .now + configuration.uploadLimit, hashPrefix: hashPrefix)
    }

    private func servedModel(_ name: String) throws(APIError) -> ServedModelEntry {
        guard let entry = models.entry(named: name) else { throw .notFound("unknown_model", "no model named \(name) is served") }
        return entry
    }

    private func keyQuotaExceeded(bytes: Int, stored: Int) -> APIError {
        .quotaExceeded("this key's \(bytes) bytes would exceed the quota of \(configuration.quotas.storedKeyBytes) bytes of stored keys (\(stored) used): delete a key first",
                       retryAfter: nil)
    }

    private func keyModelMismatch(_ keySet: String, _ entry: ServedModelEntry) -> APIError {
        .conflict("key_model_mismatch", "the key is for parameter set \(keySet); model \(entry.listing.name) needs \(entry.parameterSet)")
    }
}

/// A JSON answer (keys sorted, so answers are reproducible).
func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    return Response(status: status, headers: [.contentType: "application/json"],
                    body: ResponseBody(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
}

/// A server running in this process (the demo, the service bench, the tests): its port, and a
/// way to stop it gracefully.
public struct RunningServer: Sendable {
    /// The bound port.
    public let port: Int
    private let services: ServiceGroup
    private let task: Task<Void, any Error>

    fileprivate init(port: Int, services: ServiceGroup, task: Task<Void, any Error>) {
        self.port = port
        self.services = services
        self.task = task
    }

    /// The server's root URL on loopback.
    public var url: URL { URL(string: "http://127.0.0.1:\(port)")! }

    /// Stops listening, lets a running job finish, and waits.
    public func stop() async {
        await services.triggerGracefulShutdown()
        _ = try? await task.value
    }
}

extension ObscuraServer {
    /// Starts serving in a background task and returns once the port is bound.
    public func start() async throws -> RunningServer {
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let services = ServiceGroup(configuration: .init(services: [makeApplication { continuation.yield($0) }], logger: logger))
        let task = Task {
            defer { continuation.finish() }
            try await serve(services)
        }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else {
            try await task.value
            throw APIError(status: .internalServerError, code: "not_started", message: "the server stopped before listening")
        }
        return RunningServer(port: port, services: services, task: task)
    }
}

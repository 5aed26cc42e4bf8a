import Foundation
import Logging
import ObscuraAPI
import PostgresNIO

/// A PostgreSQL server that refused or could not be reached, with the reason.
public struct DatabaseUnreachable: Error, CustomStringConvertible {
    public let address: PostgresAddress
    public let reason: String
    public var description: String { "cannot use the database \(address): \(reason)" }
}

/// The rows in a PostgreSQL database (postgres-nio), shared by API servers and `obscura worker`
/// processes on any number of machines.
///
/// - Concurrency: PostgreSQL runs transactions side by side (read committed), so each
///   check-then-write takes a transaction-scoped advisory lock first: one for admissions (the
///   queue's capacity is global), one per owner for key registrations. Workers claim jobs with
///   `FOR UPDATE SKIP LOCKED`, so two never take the same job and none waits on another's.
/// - Time: lease ends and job times are the database's clock, so that the workers' clocks
///   need not agree.
final class PostgresServiceDatabase: ServiceDatabase {
    private let client: PostgresClient
    private let running: Task<Void, Never>
    private let logger: Logger

    /// Connects (the pool starts at once and lives as long as this object) and brings the schema up to date.
    init(address: PostgresAddress, logger: Logger = Logger(label: "obscura.postgres")) async throws {
        let tls: PostgresClient.Configuration.TLS = address.requiresTLS ? .require(.makeClientConfiguration()) : .disable
        var configuration = PostgresClient.Configuration(host: address.host, port: address.port, username: address.user,
                                                         password: address.password, database: address.database, tls: tls)
        configuration.options.maximumConnections = 8
        // The pool retries a failing server for a minute and then names no cause: one direct
        // connection first turns a wrong password or address into a prompt, readable error.
        var background = logger
        background.logLevel = .error
        do {
            let check = PostgresConnection.Configuration(host: address.host, port: address.port, username: address.user, password: address.password,
                                                         database: address.database,
                                                         tls: address.requiresTLS ? .require(try NIOSSLContext(configuration: .makeClientConfiguration())) : .disable)
            try await PostgresConnection.connect(configuration: check, id: 0, logger: background).close()
        } catch {
            throw DatabaseUnreachable(address: address, reason: Self.reason(error))
        }
        // The pool's own chatter (a lease asked for while `run()` starts) stays below errors.
        let client = PostgresClient(configuration: configuration, backgroundLogger: background)
        self.client = client
        self.logger = logger
        running = Task { await client.run() }
        do {
            try await migrate()
        } catch {
            running.cancel()
            throw error
        }
    }

    deinit { running.cancel() }

    /// What the server said (a wrong password, an unknown database), or why it could not be reached.
    private static func reason(_ error: any Error) -> String {
        guard let error = error as? PSQLError else { return String(describing: error) }
        if let message = error.serverInfo?[.message] { return message }
        if let underlying = error.underlying { return String(describing: underlying) }
        return String(describing: error.code)
    }

    /// The schema, one version so far; a second process starting at the same time waits for the first.
    private func migrate() async throws {
        try await transaction { db in
            try await db.query("SELECT pg_advisory_xact_lock(hashtext('obscura-schema'))", logger: self.logger)
            try await db.query("CREATE TABLE IF NOT EXISTS obscura_schema (version INTEGER NOT NULL)", logger: self.logger)
            let version = try await db.query("SELECT COALESCE(MAX(version), 0) FROM obscura_schema", logger: self.logger)
                .collect().first?.decode(Int.self) ?? 0
            guard version < 1 else { return }
            for statement: PostgresQuery in [
                "CREATE TABLE token (id TEXT PRIMARY KEY, digest TEXT NOT NULL UNIQUE, name TEXT NOT NULL, createdAt DOUBLE PRECISION NOT NULL, revokedAt DOUBLE PRECISION)",
                "CREATE TABLE key (id TEXT NOT NULL, owner TEXT NOT NULL, parameterSet TEXT NOT NULL, bytes BIGINT NOT NULL, PRIMARY KEY (id))",
                "CREATE INDEX key_owner ON key (owner)",
                """
                CREATE TABLE job (id TEXT PRIMARY KEY, owner TEXT NOT NULL, model TEXT NOT NULL, keyId TEXT REFERENCES key (id),
                    status TEXT NOT NULL, progress DOUBLE PRECISION NOT NULL, stage TEXT, error TEXT,
                    createdAt DOUBLE PRECISION NOT NULL, startedAt DOUBLE PRECISION, finishedAt DOUBLE PRECISION,
                    evaluationSeconds DOUBLE PRECISION, bootstraps BIGINT NOT NULL, attempts BIGINT NOT NULL,
                    expiresAt DOUBLE PRECISION, leaseOwner TEXT, leaseExpiresAt DOUBLE PRECISION)
                """,
                "CREATE INDEX job_owner ON job (owner)",
                "CREATE INDEX job_status_createdAt ON job (status, createdAt)",
                "CREATE INDEX job_expiresAt ON job (expiresAt)",
                "CREATE TABLE submission (owner TEXT NOT NULL, at DOUBLE PRECISION NOT NULL)",
                "CREATE INDEX submission_owner_at ON submission (owner, at)",
                "INSERT INTO obscura_schema (version) VALUES (1)",
            ] {
                try await db.query(statement, logger: self.logger)
            }
        }
    }

    // MARK: Tokens

    func insertToken(_ record: APIToken, digest: String) async throws {
        try await client.query("INSERT INTO token (id, digest, name, createdAt) VALUES (\(record.id), \(digest), \(record.name), \(record.createdAt))",
                               logger: logger)
    }

    func tokens() async throws -> [APIToken] {
        try await client.query("SELECT id, name, createdAt, revokedAt FROM token ORDER BY createdAt", logger: logger).collect().map(Self.token)
    }

    func revokeToken(id: String, at time: Double) async throws -> APIToken? {
        try await client.query("UPDATE token SET revokedAt = \(time) WHERE id = \(id) AND revokedAt IS NULL", logger: logger)
        return try await client.query("SELECT id, name, createdAt, revokedAt FROM token WHERE id = \(id)", logger: logger).collect().first.map(Self.token)
    }

    func ownerID(forDigest digest: String) async throws -> String? {
        try await client.query("SELECT id FROM token WHERE digest = \(digest) AND revokedAt IS NULL", logger: logger).collect().first?.decode(String.self)
    }

    private static func token(_ row: PostgresRow) throws -> APIToken {
        let (id, name, createdAt, revokedAt) = try row.decode((String, String, Double, Double?).self)
        return APIToken(id: id, name: name, createdAt: createdAt, revokedAt: revokedAt)
    }

    // MARK: Keys

    func key(id: String, owner: Owner) async throws -> RegisteredKey? {
        try await client.query("SELECT id, parameterSet, bytes FROM key WHERE id = \(id) AND owner = \(owner.id)", logger: logger)
            .collect().first.map(Self.key)
    }

    private static func key(_ row: PostgresRow) throws -> RegisteredKey {
        let (id, parameterSet, bytes) = try row.decode((String, String, Int).self)
        return RegisteredKey(id: id, parameterSet: parameterSet, bytes: bytes)
    }

    func register(_ key: RegisteredKey, owner: Owner, quota: Int, storeBlob: @Sendable () throws -> Void) async throws -> ServiceStore.Registration {
        try await transaction { db in
            try await db.query("SELECT pg_advisory_xact_lock(hashtext(\("obscura-keys:" + owner.id)))", logger: self.logger)
            guard try await db.query("SELECT 1 FROM key WHERE id = \(key.id) AND owner = \(owner.id)", logger: self.logger).collect().isEmpty else {
                return .alreadyRegistered
            }
            let stored = try await Self.storedKeyBytes(db, owner: owner, logger: self.logger)
            guard stored <= quota, key.bytes <= quota - stored else { return .overQuota(storedBytes: stored) }
            try storeBlob()
            try await db.query("INSERT INTO key (id, owner, parameterSet, bytes) VALUES (\(key.id), \(owner.id), \(key.parameterSet), \(key.bytes))",
                               logger: self.logger)
            return .stored
        }
    }

    func storedKeyBytes(owner: Owner) async throws -> Int {
        try await client.withConnection { try await Self.storedKeyBytes($0, owner: owner, logger: self.logger) }
    }

    private static func storedKeyBytes(_ db: PostgresConnection, owner: Owner, logger: Logger) async throws -> Int {
        try await db.query("SELECT COALESCE(SUM(bytes), 0)::BIGINT FROM key WHERE owner = \(owner.id)", logger: logger).collect().first?.decode(Int.self) ?? 0
    }

    func deleteKey(id: String, owner: Owner, removeBlob: @Sendable () -> Void) async throws -> ServiceStore.Deletion {
        try await transaction { db in
            // Locks the key's row: a job admitted meanwhile with this key waits for the deletion, then fails its reference.
            guard try await !db.query("SELECT 1 FROM key WHERE id = \(id) AND owner = \(owner.id) FOR UPDATE", logger: self.logger).collect().isEmpty else {
                return .notFound
            }
            let pending = try await db.query("SELECT COUNT(*) FROM job WHERE keyId = \(id) AND status IN ('queued', 'running')", logger: self.logger)
                .collect().first?.decode(Int.self) ?? 0
            guard pending == 0 else { return .unfinished(jobs: pending) }
            try await db.query("UPDATE job SET keyId = NULL WHERE keyId = \(id)", logger: self.logger)
            try await db.query("DELETE FROM key WHERE id = \(id)", logger: self.logger)
            removeBlob()
            return .deleted
        }
    }

    // MARK: Jobs

    func holdings(of owner: Owner) async throws -> (jobs: [String], keys: [String]) {
        let jobs = try await client.query("SELECT id FROM job WHERE owner = \(owner.id)", logger: logger).collect().map { try $0.decode(String.self) }
        let keys = try await client.query("SELECT id FROM key WHERE owner = \(owner.id)", logger: logger).collect().map { try $0.decode(String.self) }
        return (jobs, keys)
    }

    /// The columns of ``InferenceJob``, in the order ``job(_:)`` decodes them.
    private static let jobColumns = "id, model, keyId, status, progress, stage, error, createdAt, startedAt, finishedAt, evaluationSeconds, bootstraps, attempts, expiresAt"

    private static func job(_ row: PostgresRow) throws -> InferenceJob {
        let (id, model, keyId, status, progress, stage, error, createdAt, startedAt, finishedAt, evaluationSeconds, bootstraps, attempts, expiresAt) =
            try row.decode((String, String, String?, String, Double, String?, String?, Double, Double?, Double?, Double?, Int, Int, Double?).self)
        guard let status = JobStatus(rawValue: status) else { throw ServiceStore.CorruptRow(table: "job", id: id, column: "status") }
        return InferenceJob(id: id, model: model, keyId: keyId, status: status, progress: progress, stage: stage, error: error,
                            createdAt: createdAt, startedAt: startedAt, finishedAt: finishedAt, evaluationSeconds: evaluationSeconds,
                            bootstraps: bootstraps, attempts: attempts, expiresAt: expiresAt)
    }

    func job(id: String, owner: Owner?) async throws -> InferenceJob? {
        let rows = if let owner {
            try await client.query("SELECT \(unescaped: Self.jobColumns) FROM job WHERE id = \(id) AND owner = \(owner.id)", logger: logger)
        } else {
            try await client.query("SELECT \(unescaped: Self.jobColumns) FROM job WHERE id = \(id)", logger: logger)
        }
        return try await rows.collect().first.map(Self.job)
    }

    func admit(_ job: InferenceJob, owner: Owner, quotas: Quotas, capacity: Int, storeBlob: @Sendable () throws -> Void) async throws -> ServiceStore.Admission {
        try await transaction { db in
            try await db.query("SELECT pg_advisory_xact_lock(hashtext('obscura-admission'))", logger: self.logger)
            let counts = try await db.query("""
                SELECT COUNT(*), COUNT(*) FILTER (WHERE owner = \(owner.id)) FROM job WHERE status IN ('queued', 'running')
                """, logger: self.logger).collect().first?.decode((Int, Int).self) ?? (0, 0)
            guard counts.0 < capacity else { return .queueFull(capacity: capacity) }
            guard counts.1 < quotas.unfinishedJobs else { return .tooManyUnfinished(counts.1) }
            try await db.query("DELETE FROM submission WHERE owner = \(owner.id) AND at <= \(job.createdAt - 3600)", logger: self.logger)
            let lastHour = try await db.query("SELECT at FROM submission WHERE owner = \(owner.id) ORDER BY at", logger: self.logger)
                .collect().map { try $0.decode(Double.self) }
            if let refusal = ServiceStore.Admission.hourlyRefusal(lastHour: lastHour, quotas: quotas, now: job.createdAt) { return refusal }
            try storeBlob()
            try await db.query("""
                INSERT INTO job (id, owner, model, keyId, status, progress, stage, error, createdAt, startedAt, finishedAt,
                    evaluationSeconds, bootstraps, attempts, expiresAt)
                VALUES (\(job.id), \(owner.id), \(job.model), \(job.keyId), \(job.status.rawValue), \(job.progress), \(job.stage), \(job.error),
                    \(job.createdAt), \(job.startedAt), \(job.finishedAt), \(job.evaluationSeconds), \(job.bootstraps), \(job.attempts), \(job.expiresAt))
                """, logger: self.logger)
            try await db.query("INSERT INTO submission (owner, at) VALUES (\(owner.id), \(job.createdAt))", logger: self.logger)
            return .admitted
        }
    }

    func deleteJob(id: String, owner: Owner?) async throws -> ServiceStore.Deletion {
        try await transaction { db in
            let rows = if let owner {
                try await db.query("SELECT status FROM job WHERE id = \(id) AND owner = \(owner.id) FOR UPDATE", logger: self.logger)
            } else {
                try await db.query("SELECT status FROM job WHERE id = \(id) FOR UPDATE", logger: self.logger)
            }
            guard let status = try await rows.collect().first?.decode(String.self) else { return .notFound }
            guard JobStatus(rawValue: status)?.isFinal == true else { return .unfinished(jobs: 1) }
            try await db.query("DELETE FROM job WHERE id = \(id)", logger: self.logger)
            return .deleted
        }
    }

    func setExpiry(retention: Double?, onlyUnset: Bool) async throws {
        try await client.query("""
            UPDATE job SET expiresAt = finishedAt + \(retention) WHERE status IN ('done', 'failed') AND (NOT \(onlyUnset) OR expiresAt IS NULL)
            """, logger: logger)
    }

    func expiredJobs(now: Double) async throws -> [String] {
        try await client.query("SELECT id FROM job WHERE expiresAt <= \(now) ORDER BY expiresAt", logger: logger).collect().map { try $0.decode(String.self) }
    }

    func requeueRunning() async throws -> [InferenceJob] {
        // Other processes may be running these: with PostgreSQL an interrupted job is found by
        // its lease ending, not by a restart.
        []
    }

    func statistics() async throws -> ServiceStore.Statistics {
        var statistics = ServiceStore.Statistics()
        for row in try await client.query("SELECT status, COUNT(*) FROM job GROUP BY status", logger: logger).collect() {
            let (status, count) = try row.decode((String, Int).self)
            if let status = JobStatus(rawValue: status) { statistics.counts[status] = count }
        }
        for row in try await client.query("SELECT model, AVG(evaluationSeconds) FROM job WHERE status = 'done' GROUP BY model", logger: logger).collect() {
            let (model, seconds) = try row.decode((String, Double?).self)
            statistics.meanSeconds[model] = seconds
        }
        if let totals = try await client.query("""
            SELECT COALESCE(SUM(bootstraps), 0)::BIGINT, COALESCE(SUM(evaluationSeconds), 0) FROM job WHERE status = 'done' AND bootstraps > 0
            """, logger: logger).collect().first {
            statistics.bootstrapTotals = try totals.decode((Int, Double).self)
        }
        return statistics
    }

    // MARK: Leases

    func claimNext(worker: String, models: [String]?, leaseSeconds: Double) async throws -> InferenceJob? {
        try await client.query("""
            UPDATE job SET status = 'running', attempts = attempts + 1, startedAt = EXTRACT(EPOCH FROM clock_timestamp()), progress = 0,
                stage = NULL, leaseOwner = \(worker), leaseExpiresAt = EXTRACT(EPOCH FROM clock_timestamp()) + \(leaseSeconds)
            WHERE id = (SELECT id FROM job
                        WHERE (status = 'queued' OR (status = 'running' AND leaseExpiresAt < EXTRACT(EPOCH FROM clock_timestamp())))
                            AND (\(models == nil) OR model = ANY(\(models ?? [])))
                        ORDER BY createdAt LIMIT 1 FOR UPDATE SKIP LOCKED)
            RETURNING \(unescaped: Self.jobColumns)
            """, logger: logger).collect().first.map(Self.job)
    }

    func renewLease(id: String, worker: String, leaseSeconds: Double, progress: Double, stage: String?) async throws -> Bool {
        try await !client.query("""
            UPDATE job SET leaseExpiresAt = EXTRACT(EPOCH FROM clock_timestamp()) + \(leaseSeconds), progress = \(progress), stage = \(stage)
            WHERE id = \(id) AND status = 'running' AND leaseOwner = \(worker) RETURNING id
            """, logger: logger).collect().isEmpty
    }

    func leaseHolder(of id: String) async throws -> String? {
        try await client.query("SELECT leaseOwner FROM job WHERE id = \(id) AND status = 'running'", logger: logger).collect().first?.decode(String?.self)
    }

    func complete(_ job: InferenceJob, worker: String, storeBlob: @Sendable () throws -> Void) async throws -> Bool {
        try await transaction { db in
            // `now()` is the transaction's start: finish and expiry from one reading of the database's clock.
            let holder = try await db.query("SELECT leaseOwner FROM job WHERE id = \(job.id) AND status = 'running' FOR UPDATE", logger: self.logger)
                .collect().first?.decode(String?.self)
            guard holder == worker else { return false }
            try storeBlob()
            try await db.query("""
                UPDATE job SET status = \(job.status.rawValue), progress = \(job.progress), stage = \(job.stage), error = \(job.error),
                    finishedAt = EXTRACT(EPOCH FROM now()), evaluationSeconds = \(job.evaluationSeconds),
                    expiresAt = EXTRACT(EPOCH FROM now()) + \(job.expiresAt.flatMap { expiry in job.finishedAt.map { expiry - $0 } }),
                    leaseOwner = NULL, leaseExpiresAt = NULL
                WHERE id = \(job.id)
                """, logger: self.logger)
            return true
        }
    }

    /// Runs `body` in a transaction: committed when it returns, rolled back when it throws.
    private func transaction<T: Sendable>(_ body: @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        try await client.withTransaction(logger: logger) { try await body($0) }
    }
}

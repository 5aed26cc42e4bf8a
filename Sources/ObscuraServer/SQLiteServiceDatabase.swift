import Foundation
import GRDB
import ObscuraAPI

/// The rows in one SQLite file (GRDB), for one server process. SQLite runs one write
/// transaction at a time, so every check-then-write below is serialized as it stands.
struct SQLiteServiceDatabase: ServiceDatabase {
    private let database: DatabaseQueue

    init(path: String) throws {
        var configuration = Configuration()
        // `obscura admin` writes tokens while a server runs on the same file.
        configuration.busyMode = .timeout(10)
        database = try DatabaseQueue(path: path, configuration: configuration)
        try Self.migrator.migrate(database)
    }

    private static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.create(table: RegisteredKey.databaseTableName) { t in
                t.primaryKey("id", .text)
                t.column("parameterSet", .text).notNull()
                t.column("bytes", .integer).notNull()
            }
            try db.create(table: InferenceJob.databaseTableName) { t in
                t.primaryKey("id", .text)
                t.column("model", .text).notNull()
                t.column("keyId", .text).references(RegisteredKey.databaseTableName)
                t.column("status", .text).notNull().indexed()
                t.column("progress", .double).notNull()
                t.column("stage", .text)
                t.column("error", .text)
                t.column("createdAt", .double).notNull()
                t.column("startedAt", .double)
                t.column("finishedAt", .double)
                t.column("evaluationSeconds", .double)
                t.column("bootstraps", .integer).notNull()
                t.column("attempts", .integer).notNull()
            }
        }
        migrator.registerMigration("v2: expiry") { db in
            try db.alter(table: InferenceJob.databaseTableName) { t in t.add(column: "expiresAt", .double) }
            try db.create(index: "job_expiresAt", on: InferenceJob.databaseTableName, columns: ["expiresAt"])
        }
        migrator.registerMigration("v3: owners, tokens, submissions") { db in
            // Rows from before accounts belong to the anonymous owner of an open server.
            for table in [RegisteredKey.databaseTableName, InferenceJob.databaseTableName] {
                try db.alter(table: table) { t in t.add(column: "owner", .text).notNull().defaults(to: "") }
                try db.create(index: "\(table)_owner", on: table, columns: ["owner"])
            }
            try db.create(table: APIToken.databaseTableName) { t in
                t.primaryKey("id", .text)
                t.column("digest", .text).notNull().unique()
                t.column("name", .text).notNull()
                t.column("createdAt", .double).notNull()
                t.column("revokedAt", .double)
            }
            // One row per accepted submission of the last hour, for the hourly quota: deleting a
            // job does not give its submission back.
            try db.create(table: "submission") { t in
                t.column("owner", .text).notNull()
                t.column("at", .double).notNull()
            }
            try db.create(index: "submission_owner_at", on: "submission", columns: ["owner", "at"])
        }
        migrator.registerMigration("v4: leases") { db in
            try db.alter(table: InferenceJob.databaseTableName) { t in
                t.add(column: "leaseOwner", .text)
                t.add(column: "leaseExpiresAt", .double)
            }
        }
        return migrator
    }

    // MARK: Tokens

    func insertToken(_ record: APIToken, digest: String) async throws {
        try await database.write { db in
            try db.execute(sql: "INSERT INTO token (id, digest, name, createdAt) VALUES (?, ?, ?, ?)",
                           arguments: [record.id, digest, record.name, record.createdAt])
        }
    }

    func tokens() async throws -> [APIToken] {
        try await database.read { try APIToken.order(Column("createdAt")).fetchAll($0) }
    }

    func revokeToken(id: String, at time: Double) async throws -> APIToken? {
        try await database.write { db in
            try db.execute(sql: "UPDATE token SET revokedAt = ? WHERE id = ? AND revokedAt IS NULL", arguments: [time, id])
            return try APIToken.fetchOne(db, key: id)
        }
    }

    func ownerID(forDigest digest: String) async throws -> String? {
        try await database.read { try String.fetchOne($0, sql: "SELECT id FROM token WHERE digest = ? AND revokedAt IS NULL", arguments: [digest]) }
    }

    // MARK: Keys

    func key(id: String, owner: Owner) async throws -> RegisteredKey? {
        try await database.read { try Self.key($0, id: id, owner: owner) }
    }

    private static func key(_ db: Database, id: String, owner: Owner) throws -> RegisteredKey? {
        try RegisteredKey.filter(key: id).filter(Column("owner") == owner.id).fetchOne(db)
    }

    func register(_ key: RegisteredKey, owner: Owner, quota: Int, storeBlob: @Sendable () throws -> Void) async throws -> ServiceStore.Registration {
        try await database.write { db in
            guard try Self.key(db, id: key.id, owner: owner) == nil else { return .alreadyRegistered }
            let stored = try Self.storedKeyBytes(db, owner: owner)
            guard stored <= quota, key.bytes <= quota - stored else { return .overQuota(storedBytes: stored) }
            try storeBlob()
            try Owned(record: key, owner: owner).insert(db)
            return .stored
        }
    }

    func storedKeyBytes(owner: Owner) async throws -> Int {
        try await database.read { try Self.storedKeyBytes($0, owner: owner) }
    }

    private static func storedKeyBytes(_ db: Database, owner: Owner) throws -> Int {
        try Int.fetchOne(db, sql: "SELECT COALESCE(SUM(bytes), 0) FROM key WHERE owner = ?", arguments: [owner.id]) ?? 0
    }

    func deleteKey(id: String, owner: Owner, removeBlob: @Sendable () -> Void) async throws -> ServiceStore.Deletion {
        try await database.write { db in
            guard try Self.key(db, id: id, owner: owner) != nil else { return .notFound }
            let pending = try InferenceJob.filter(Column("keyId") == id).filter(ServiceStore.unfinished.contains(Column("status"))).fetchCount(db)
            guard pending == 0 else { return .unfinished(jobs: pending) }
            try db.execute(sql: "UPDATE job SET keyId = NULL WHERE keyId = ?", arguments: [id])
            _ = try RegisteredKey.deleteOne(db, key: id)
            removeBlob()
            return .deleted
        }
    }

    // MARK: Jobs

    func holdings(of owner: Owner) async throws -> (jobs: [String], keys: [String]) {
        try await database.read { db in
            (try String.fetchAll(db, sql: "SELECT id FROM job WHERE owner = ?", arguments: [owner.id]),
             try String.fetchAll(db, sql: "SELECT id FROM key WHERE owner = ?", arguments: [owner.id]))
        }
    }

    func job(id: String, owner: Owner?) async throws -> InferenceJob? {
        try await database.read { try Self.jobs(of: owner).filter(key: id).fetchOne($0) }
    }

    func admit(_ job: InferenceJob, owner: Owner, quotas: Quotas, capacity: Int, storeBlob: @Sendable () throws -> Void) async throws -> ServiceStore.Admission {
        try await database.write { db in
            let unfinished = ServiceStore.unfinished.contains(Column("status"))
            let all = try InferenceJob.filter(unfinished).fetchCount(db)
            guard all < capacity else { return .queueFull(capacity: capacity) }
            let owned = try Self.jobs(of: owner).filter(unfinished).fetchCount(db)
            guard owned < quotas.unfinishedJobs else { return .tooManyUnfinished(owned) }
            try db.execute(sql: "DELETE FROM submission WHERE owner = ? AND at <= ?", arguments: [owner.id, job.createdAt - 3600])
            let lastHour = try Double.fetchAll(db, sql: "SELECT at FROM submission WHERE owner = ? ORDER BY at", arguments: [owner.id])
            if let refusal = ServiceStore.Admission.hourlyRefusal(lastHour: lastHour, quotas: quotas, now: job.createdAt) { return refusal }
            try storeBlob()
            try Owned(record: job, owner: owner).insert(db)
            try db.execute(sql: "INSERT INTO submission (owner, at) VALUES (?, ?)", arguments: [owner.id, job.createdAt])
            return .admitted
        }
    }

    func deleteJob(id: String, owner: Owner?) async throws -> ServiceStore.Deletion {
        try await database.write { db in
            guard let job = try Self.jobs(of: owner).filter(key: id).fetchOne(db) else { return .notFound }
            guard job.status.isFinal else { return .unfinished(jobs: 1) }
            _ = try InferenceJob.deleteOne(db, key: id)
            return .deleted
        }
    }

    func setExpiry(retention: Double?, onlyUnset: Bool) async throws {
        try await database.write { db in
            var finished = InferenceJob.filter(ServiceStore.finished.contains(Column("status")))
            if onlyUnset { finished = finished.filter(Column("expiresAt") == nil) }
            try finished.updateAll(db, Column("expiresAt").set(to: retention.map { Column("finishedAt") + $0 }))
        }
    }

    func expiredJobs(now: Double) async throws -> [String] {
        try await database.read {
            try String.fetchAll($0, sql: "SELECT id FROM job WHERE expiresAt <= ? ORDER BY expiresAt", arguments: [now])
        }
    }

    func requeueRunning() async throws -> [InferenceJob] {
        try await database.write { db in
            try db.execute(sql: "UPDATE job SET status = 'queued', progress = 0, stage = NULL, leaseOwner = NULL, leaseExpiresAt = NULL WHERE status = 'running'")
            return try InferenceJob.filter(Column("status") == JobStatus.queued.rawValue).order(Column("createdAt")).fetchAll(db)
        }
    }

    func statistics() async throws -> ServiceStore.Statistics {
        try await database.read { db in
            var statistics = ServiceStore.Statistics()
            for row in try Row.fetchAll(db, sql: "SELECT status, COUNT(*) AS n FROM job GROUP BY status") {
                if let status = JobStatus(rawValue: row["status"]) { statistics.counts[status] = row["n"] }
            }
            for row in try Row.fetchAll(db, sql: "SELECT model, AVG(evaluationSeconds) AS s FROM job WHERE status = 'done' GROUP BY model") {
                statistics.meanSeconds[row["model"]] = row["s"]
            }
            let totals = try Row.fetchOne(db, sql: "SELECT SUM(evaluationSeconds) AS s, SUM(bootstraps) AS b FROM job WHERE status = 'done' AND bootstraps > 0")
            statistics.bootstrapTotals = (totals?["b"] ?? 0, totals?["s"] ?? 0)
            return statistics
        }
    }

    // MARK: Leases

    func claimNext(worker: String, models: [String]?, leaseSeconds: Double) async throws -> InferenceJob? {
        try await database.write { db in
            let now = Date().timeIntervalSince1970
            var claimable = InferenceJob.filter(sql: "status = 'queued' OR (status = 'running' AND leaseExpiresAt < ?)", arguments: [now])
            if let models { claimable = claimable.filter(models.contains(Column("model"))) }
            guard let id = try String.fetchOne(db, claimable.select(Column("id")).order(Column("createdAt")).limit(1)) else { return nil }
            try db.execute(sql: """
                UPDATE job SET status = 'running', attempts = attempts + 1, startedAt = ?, progress = 0, stage = NULL,
                    leaseOwner = ?, leaseExpiresAt = ? WHERE id = ?
                """, arguments: [now, worker, now + leaseSeconds, id])
            return try InferenceJob.fetchOne(db, key: id)
        }
    }

    func renewLease(id: String, worker: String, leaseSeconds: Double, progress: Double, stage: String?) async throws -> Bool {
        try await database.write { db in
            try db.execute(sql: "UPDATE job SET leaseExpiresAt = ?, progress = ?, stage = ? WHERE id = ? AND status = 'running' AND leaseOwner = ?",
                           arguments: [Date().timeIntervalSince1970 + leaseSeconds, progress, stage, id, worker])
            return db.changesCount == 1
        }
    }

    func leaseHolder(of id: String) async throws -> String? {
        try await database.read { try String.fetchOne($0, sql: "SELECT leaseOwner FROM job WHERE id = ? AND status = 'running'", arguments: [id]) }
    }

    func complete(_ job: InferenceJob, worker: String, storeBlob: @Sendable () throws -> Void) async throws -> Bool {
        try await database.write { db in
            guard try String.fetchOne(db, sql: "SELECT leaseOwner FROM job WHERE id = ? AND status = 'running'", arguments: [job.id]) == worker else { return false }
            try storeBlob()
            try job.update(db)
            try db.execute(sql: "UPDATE job SET leaseOwner = NULL, leaseExpiresAt = NULL WHERE id = ?", arguments: [job.id])
            return true
        }
    }

    /// The jobs of `owner`, or of every owner when nil.
    private static func jobs(of owner: Owner?) -> QueryInterfaceRequest<InferenceJob> {
        owner.map { InferenceJob.filter(Column("owner") == $0.id) } ?? InferenceJob.all()
    }
}

/// A key or job row with its owner, which the API types do not carry (a client never sees
/// another owner's rows, and its own are implied by its token).
private struct Owned<Record: PersistableRecord>: PersistableRecord {
    static var databaseTableName: String { Record.databaseTableName }
    let record: Record
    let owner: Owner

    func encode(to container: inout PersistenceContainer) throws {
        try record.encode(to: &container)
        container["owner"] = owner.id
    }
}

extension APIToken: FetchableRecord, TableRecord {
    public static let databaseTableName = "token"
}

extension RegisteredKey: FetchableRecord, PersistableRecord {
    public static let databaseTableName = "key"
}

extension InferenceJob: FetchableRecord, PersistableRecord {
    public static let databaseTableName = "job"
}

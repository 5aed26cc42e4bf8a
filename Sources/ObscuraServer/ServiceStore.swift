import Foundation
import GRDB
import ObscuraAPI

/// What must survive a restart: registered keys and jobs in SQLite (through GRDB, one file),
/// their large blobs (keys, inputs, results) as files beside it. A blob is written to a temporary
/// name and renamed before its row is inserted, so a row never points at a partial file, and a
/// refused request never changes either.
public struct ServiceStore: Sendable {
    /// The kinds of blobs, one folder each.
    enum BlobKind: String, CaseIterable {
        case keys, inputs, results
    }

    private let database: DatabaseQueue
    private let blobRoot: URL

    /// Opens (or creates) the store in `directory` and brings its schema up to date.
    public init(directory: String) throws {
        let root = URL(fileURLWithPath: directory, isDirectory: true)
        blobRoot = root.appendingPathComponent("blobs", isDirectory: true)
        for kind in BlobKind.allCases {
            try FileManager.default.createDirectory(at: blobRoot.appendingPathComponent(kind.rawValue), withIntermediateDirectories: true)
        }
        database = try DatabaseQueue(path: root.appendingPathComponent("obscura.sqlite").path)
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
        return migrator
    }

    // MARK: Keys

    /// The key with this id, if registered.
    public func key(id: String) async throws -> RegisteredKey? {
        try await database.read { try RegisteredKey.fetchOne($0, key: id) }
    }

    /// Stores a validated key's bytes and row; a key already registered is left as it is. The
    /// check, the file and the row are one write transaction, so a concurrent deletion of the
    /// same key (same bytes, same id) comes wholly before or after.
    func register(_ key: RegisteredKey, bytes: [UInt8]) async throws {
        try await database.write { db in
            guard try RegisteredKey.fetchOne(db, key: key.id) == nil else { return }
            try writeBlob(.keys, id: key.id, bytes: bytes)
            try key.insert(db)
        }
    }

    /// The key's stored bytes.
    func keyBytes(id: String) throws -> [UInt8] { try readBlob(.keys, id: id) }

    /// What a deletion did.
    enum Deletion: Equatable {
        case deleted
        case notFound
        /// Refused, nothing changed: a job is still queued or running (for a key: how many).
        case unfinished(jobs: Int)
    }

    /// Deletes a key's row and bytes, in one write transaction, unless jobs that have not
    /// finished still need it. Finished jobs keep their results and forget which key they used
    /// (their `keyId` becomes null).
    func deleteKey(id: String) async throws -> Deletion {
        try await database.write { db in
            guard try RegisteredKey.fetchOne(db, key: id) != nil else { return .notFound }
            let pending = try InferenceJob.filter(Column("keyId") == id).filter(Self.unfinished.contains(Column("status"))).fetchCount(db)
            guard pending == 0 else { return .unfinished(jobs: pending) }
            try db.execute(sql: "UPDATE \(InferenceJob.databaseTableName) SET keyId = NULL WHERE keyId = ?", arguments: [id])
            _ = try RegisteredKey.deleteOne(db, key: id)
            // Inside the transaction: a registration of the same key waits for it to end.
            removeBlob(.keys, id: id)
            return .deleted
        }
    }

    // MARK: Jobs

    /// The job with this id, if any.
    public func job(id: String) async throws -> InferenceJob? {
        try await database.read { try InferenceJob.fetchOne($0, key: id) }
    }

    /// Stores a new job's input and row.
    func insert(_ job: InferenceJob, input: [UInt8]) async throws {
        try writeBlob(.inputs, id: job.id, bytes: input)
        do {
            try await database.write { try job.insert($0) }
        } catch {
            removeBlob(.inputs, id: job.id)
            throw error
        }
    }

    /// Replaces a job's row (status, times, progress).
    func update(_ job: InferenceJob) async throws {
        try await database.write { try job.update($0) }
    }

    /// Stores a finished job's result, then marks the row done.
    func finish(_ job: InferenceJob, result: [UInt8]) async throws {
        try writeBlob(.results, id: job.id, bytes: result)
        try await update(job)
    }

    /// The job's encrypted input.
    func inputBytes(id: String) throws -> [UInt8] { try readBlob(.inputs, id: id) }

    /// Deletes a finished (done or failed) job's row, then its input and result; a job still
    /// queued or running is left as it is.
    func deleteJob(id: String) async throws -> Deletion {
        let outcome: Deletion = try await database.write { db in
            guard let job = try InferenceJob.fetchOne(db, key: id) else { return .notFound }
            guard job.status.isFinal else { return .unfinished(jobs: 1) }
            _ = try InferenceJob.deleteOne(db, key: id)
            return .deleted
        }
        if outcome == .deleted {
            removeBlob(.inputs, id: id)
            removeBlob(.results, id: id)
        }
        return outcome
    }

    /// Gives every finished job the expiry that `retention` (seconds, nil: none) sets from its
    /// finishing time, so that a restart with another retention, or a database from before
    /// expiry existed, holds no stale date.
    func setExpiry(retention: Double?) async throws {
        try await database.write { db in
            let finished = JobStatus.allCases.filter(\.isFinal).map(\.rawValue)
            try InferenceJob.filter(finished.contains(Column("status")))
                .updateAll(db, Column("expiresAt").set(to: retention.map { Column("finishedAt") + $0 }))
        }
    }

    /// Finished jobs whose expiry is at or before `now` (seconds since 1970), oldest first.
    func expiredJobs(now: Double) async throws -> [String] {
        try await database.read {
            try String.fetchAll($0, sql: "SELECT id FROM \(InferenceJob.databaseTableName) WHERE expiresAt <= ? ORDER BY expiresAt",
                                arguments: [now])
        }
    }

    /// The statuses of jobs that still need their input and key.
    private static let unfinished = JobStatus.allCases.filter { !$0.isFinal }.map(\.rawValue)

    /// The job's encrypted result.
    func resultBytes(id: String) throws -> [UInt8] { try readBlob(.results, id: id) }

    /// Jobs that were accepted but had not finished when the server last stopped, oldest first.
    func unfinishedJobs() async throws -> [InferenceJob] {
        try await database.read {
            try InferenceJob.filter(Self.unfinished.contains(Column("status")))
                .order(Column("createdAt"))
                .fetchAll($0)
        }
    }

    /// Jobs per status, and the mean evaluation time of finished jobs per model.
    func statistics() async throws -> (counts: [JobStatus: Int], meanSeconds: [String: Double]) {
        try await database.read { db in
            var counts: [JobStatus: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT status, COUNT(*) AS n FROM job GROUP BY status") {
                if let status = JobStatus(rawValue: row["status"]) { counts[status] = row["n"] }
            }
            var means: [String: Double] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT model, AVG(evaluationSeconds) AS s FROM job WHERE status = 'done' GROUP BY model") {
                means[row["model"]] = row["s"]
            }
            return (counts, means)
        }
    }

    // MARK: Blobs

    private func blobURL(_ kind: BlobKind, id: String) -> URL {
        blobRoot.appendingPathComponent(kind.rawValue).appendingPathComponent(id + ".bin")
    }

    private func writeBlob(_ kind: BlobKind, id: String, bytes: [UInt8]) throws {
        let url = blobURL(kind, id: id)
        let temporary = url.deletingLastPathComponent().appendingPathComponent(".\(id).\(UUID().uuidString).partial")
        try Data(bytes).write(to: temporary)
        if FileManager.default.fileExists(atPath: url.path) { try FileManager.default.removeItem(at: url) }
        try FileManager.default.moveItem(at: temporary, to: url)
    }

    private func readBlob(_ kind: BlobKind, id: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: blobURL(kind, id: id)))
    }

    private func removeBlob(_ kind: BlobKind, id: String) {
        try? FileManager.default.removeItem(at: blobURL(kind, id: id))
    }
}

extension RegisteredKey: FetchableRecord, PersistableRecord {
    public static let databaseTableName = "key"
}

extension InferenceJob: FetchableRecord, PersistableRecord {
    public static let databaseTableName = "job"
}

import Crypto
import Foundation
import GRDB
import NIOCore
import ObscuraAPI

/// What must survive a restart: registered keys and jobs in SQLite (through GRDB, one file),
/// their large blobs (keys, inputs, results) as files beside it. A blob is written to a temporary
/// name and renamed before its row is inserted, so a row never points at a partial file, and a
/// refused request never changes either. Every key and job row names its ``Owner``; the routes
/// read and delete only the requesting owner's.
public struct ServiceStore: Sendable {
    /// The kinds of blobs, one folder each; `staging` holds uploads still being received.
    enum BlobKind: String, CaseIterable {
        case keys, inputs, results, staging
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
        var configuration = Configuration()
        // `obscura admin` writes tokens while a server runs on the same file.
        configuration.busyMode = .timeout(10)
        database = try DatabaseQueue(path: root.appendingPathComponent("obscura.sqlite").path, configuration: configuration)
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
        return migrator
    }

    // MARK: Tokens

    /// Makes an API token named `name`; returns its text, which is not stored (only its SHA-256
    /// is) and cannot be shown again.
    public func createToken(name: String) async throws -> (token: String, record: APIToken) {
        let (token, record) = APIToken.generate(name: name, now: Date().timeIntervalSince1970)
        try await database.write { db in
            try db.execute(sql: "INSERT INTO \(APIToken.databaseTableName) (id, digest, name, createdAt) VALUES (?, ?, ?, ?)",
                           arguments: [record.id, APIToken.digest(of: token), record.name, record.createdAt])
        }
        return (token, record)
    }

    /// Every token, revoked ones included, oldest first.
    public func tokens() async throws -> [APIToken] {
        try await database.read { try APIToken.order(Column("createdAt")).fetchAll($0) }
    }

    /// Revokes a token: from now on it gets 401. Its finished jobs expire as usual; its keys
    /// stay until an operator purges them (``purge(owner:)``). Returns the token as it now is, or nil if there is no such id.
    public func revokeToken(id: String) async throws -> APIToken? {
        try await database.write { db in
            try db.execute(sql: "UPDATE \(APIToken.databaseTableName) SET revokedAt = ? WHERE id = ? AND revokedAt IS NULL",
                           arguments: [Date().timeIntervalSince1970, id])
            return try APIToken.fetchOne(db, key: id)
        }
    }

    /// What ``purge(owner:)`` removed, and what it had to keep.
    public struct Purge: Sendable, Equatable {
        public var jobs = 0
        public var keys = 0
        /// Jobs still queued or running, and the keys they need: a later purge removes them.
        public var kept = 0
    }

    /// Deletes everything an owner holds (a revoked token's data): its finished jobs with their
    /// inputs and results, then its keys that no unfinished job needs, rows and files, through the
    /// same deletions as the API's DELETE routes. (A running server's in-memory key caches keep a
    /// purged key until they evict it; a revoked token cannot use it.)
    public func purge(owner: Owner) async throws -> Purge {
        var purge = Purge()
        let (jobs, keys) = try await database.read { db in
            (try String.fetchAll(db, sql: "SELECT id FROM \(InferenceJob.databaseTableName) WHERE owner = ?", arguments: [owner.id]),
             try String.fetchAll(db, sql: "SELECT id FROM \(RegisteredKey.databaseTableName) WHERE owner = ?", arguments: [owner.id]))
        }
        // A job or key gone meanwhile (expired, deleted) counts as neither.
        for id in jobs {
            switch try await deleteJob(id: id, owner: owner) {
            case .deleted: purge.jobs += 1
            case .unfinished: purge.kept += 1
            case .notFound: break
            }
        }
        for id in keys {
            switch try await deleteKey(id: id, owner: owner) {
            case .deleted: purge.keys += 1
            case .unfinished: purge.kept += 1
            case .notFound: break
            }
        }
        return purge
    }

    /// The owner a token stands for, if it is known and not revoked.
    func owner(forToken token: String) async throws -> Owner? {
        let digest = APIToken.digest(of: token)
        return try await database.read { db in
            try String.fetchOne(db, sql: "SELECT id FROM \(APIToken.databaseTableName) WHERE digest = ? AND revokedAt IS NULL",
                                arguments: [digest])
        }.map(Owner.init(id:))
    }

    // MARK: Keys

    /// The owner's key with this id, if registered.
    func key(id: String, owner: Owner) async throws -> RegisteredKey? {
        try await database.read { try RegisteredKey.filter(key: id).filter(Column("owner") == owner.id).fetchOne($0) }
    }

    /// What a key registration did.
    enum Registration: Equatable {
        case stored
        /// The owner had already registered these bytes: nothing changed.
        case alreadyRegistered
        /// Refused, nothing changed: the owner's stored keys already take this many bytes.
        case overQuota(storedBytes: Int)
    }

    /// Stores a validated key's bytes and row for `owner`, within its quota of stored key bytes.
    /// The checks, the file and the row are one write transaction, so a concurrent deletion of
    /// the same key (same bytes, same id) or a concurrent registration comes wholly before or after.
    func register(_ key: RegisteredKey, upload: StagedUpload, owner: Owner, quota: Int) async throws -> Registration {
        do {
            return try await database.write { db in
                guard try RegisteredKey.filter(key: key.id).filter(Column("owner") == owner.id).fetchOne(db) == nil else { return .alreadyRegistered }
                let stored = try Self.storedKeyBytes(db, owner: owner)
                guard stored <= quota, key.bytes <= quota - stored else { return .overQuota(storedBytes: stored) }
                try commit(upload, as: .keys, id: key.id)
                try Owned(record: key, owner: owner).insert(db)
                return .stored
            }
        } catch {
            // A failed insert or commit leaves no row: the file moved into place must go too.
            if try await self.key(id: key.id, owner: owner) == nil { removeBlob(.keys, id: key.id) }
            throw error
        }
    }

    /// Bytes of the owner's stored keys.
    func storedKeyBytes(owner: Owner) async throws -> Int {
        try await database.read { try Self.storedKeyBytes($0, owner: owner) }
    }

    private static func storedKeyBytes(_ db: Database, owner: Owner) throws -> Int {
        try Int.fetchOne(db, sql: "SELECT COALESCE(SUM(bytes), 0) FROM \(RegisteredKey.databaseTableName) WHERE owner = ?",
                         arguments: [owner.id]) ?? 0
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

    /// Deletes the owner's key, row and bytes, in one write transaction, unless jobs that have not
    /// finished still need it. Finished jobs keep their results and forget which key they used
    /// (their `keyId` becomes null).
    func deleteKey(id: String, owner: Owner) async throws -> Deletion {
        try await database.write { db in
            guard try RegisteredKey.filter(key: id).filter(Column("owner") == owner.id).fetchOne(db) != nil else { return .notFound }
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

    /// The job with this id, if `owner` (nil: any owner, for the server's own work) has one.
    public func job(id: String, owner: Owner?) async throws -> InferenceJob? {
        try await database.read { try Self.jobs(of: owner).filter(key: id).fetchOne($0) }
    }

    /// What a submission came to.
    enum Admission: Equatable {
        case admitted
        /// Refused, nothing stored: the owner has this many jobs queued or running.
        case tooManyUnfinished(Int)
        /// Refused, nothing stored: the hourly quota is used up until `retryAfter` seconds from now.
        case tooManyThisHour(retryAfter: Int)
    }

    /// Stores a new job's input and row for `owner` if its quotas allow; the checks, the input
    /// and the row are one write transaction, so concurrent submissions cannot overshoot a quota.
    /// The job's `createdAt` is the submission's time.
    @discardableResult
    func insert(_ job: InferenceJob, input: StagedUpload, owner: Owner = .anonymous, quotas: Quotas = .unlimited) async throws -> Admission {
        do {
            return try await admit(job, input: input, owner: owner, quotas: quotas)
        } catch {
            // A failed insert or commit leaves no row (the id is new): its input must go too.
            removeBlob(.inputs, id: job.id)
            throw error
        }
    }

    private func admit(_ job: InferenceJob, input: StagedUpload, owner: Owner, quotas: Quotas) async throws -> Admission {
        try await database.write { db in
            let unfinished = try Self.jobs(of: owner).filter(Self.unfinished.contains(Column("status"))).fetchCount(db)
            guard unfinished < quotas.unfinishedJobs else { return .tooManyUnfinished(unfinished) }
            let hourAgo = job.createdAt - 3600
            try db.execute(sql: "DELETE FROM submission WHERE owner = ? AND at <= ?", arguments: [owner.id, hourAgo])
            let lastHour = try Double.fetchAll(db, sql: "SELECT at FROM submission WHERE owner = ? ORDER BY at", arguments: [owner.id])
            let allowed = max(0, quotas.jobsPerHour)
            if lastHour.count >= allowed {
                // Waiting frees the oldest submissions that put the owner over the quota.
                let freedAt = (allowed == 0 ? job.createdAt : lastHour[lastHour.count - allowed]) + 3600
                return .tooManyThisHour(retryAfter: max(1, Int((freedAt - job.createdAt).rounded(.up))))
            }
            try commit(input, as: .inputs, id: job.id)
            try Owned(record: job, owner: owner).insert(db)
            try db.execute(sql: "INSERT INTO submission (owner, at) VALUES (?, ?)", arguments: [owner.id, job.createdAt])
            return .admitted
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

    /// Deletes a finished (done or failed) job of `owner` (nil: any owner, for the sweeper): its
    /// row, then its input and result; a job still queued or running is left as it is.
    func deleteJob(id: String, owner: Owner?) async throws -> Deletion {
        let outcome: Deletion = try await database.write { db in
            guard let job = try Self.jobs(of: owner).filter(key: id).fetchOne(db) else { return .notFound }
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

    /// The jobs of `owner`, or of every owner when nil.
    private static func jobs(of owner: Owner?) -> QueryInterfaceRequest<InferenceJob> {
        owner.map { InferenceJob.filter(Column("owner") == $0.id) } ?? InferenceJob.all()
    }

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

    // MARK: Uploads

    /// A request body received into a file of `blobs/staging`, hashed as it arrived. It becomes
    /// a key's or an input's blob by a rename (``register(_:upload:owner:quota:)``,
    /// ``insert(_:input:owner:quotas:)``), or is discarded.
    struct StagedUpload: Sendable {
        let url: URL
        let byteCount: Int
        /// SHA-256 of the hash prefix given to ``stage(_:limit:deadline:hashPrefix:)``, then the bytes.
        let digest: SHA256.Digest

        /// The bytes, read once for validation straight into one array: the one copy of the
        /// body in memory.
        func bytes() throws -> [UInt8] {
            let descriptor = open(url.path, O_RDONLY | O_CLOEXEC)
            guard descriptor >= 0 else { throw CocoaError(.fileReadNoSuchFile, userInfo: [NSFilePathErrorKey: url.path]) }
            defer { close(descriptor) }
            return try [UInt8](unsafeUninitializedCapacity: byteCount) { buffer, initialized in
                while initialized < byteCount {
                    let count = read(descriptor, buffer.baseAddress! + initialized, byteCount - initialized)
                    guard count > 0 else { throw CocoaError(.fileReadCorruptFile, userInfo: [NSFilePathErrorKey: url.path]) }
                    initialized += count
                }
            }
        }

        /// Removes the file unless it was committed (renamed) already.
        func discard() { try? FileManager.default.removeItem(at: url) }
    }

    /// Receives a request body chunk by chunk into a staging file (created 0600, exclusively),
    /// hashing it as it arrives, so that no whole-body copy is held while it is received.
    /// Refused, with the file removed: a declared or actual size over `limit` (413), and a body
    /// still arriving at `deadline` (408; a client that stops sending altogether is cut by the
    /// server's idle timeout).
    func stage<Body: AsyncSequence>(_ body: Body, declaredLength: Int?, limit: Int, deadline: ContinuousClock.Instant,
                                    hashPrefix: [UInt8] = []) async throws -> StagedUpload where Body.Element == ByteBuffer {
        if let declaredLength, declaredLength > limit { throw APIError.bodyTooLarge(limit: limit) }
        let url = blobRoot.appendingPathComponent(BlobKind.staging.rawValue).appendingPathComponent(UUID().uuidString + ".partial")
        let descriptor = open(url.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: url.path]) }
        var hash = SHA256()
        hash.update(data: hashPrefix)
        var count = 0
        do {
            defer { close(descriptor) }
            for try await chunk in body {
                guard ContinuousClock.now < deadline else { throw APIError.uploadTooSlow }
                count += chunk.readableBytes
                guard count <= limit else { throw APIError.bodyTooLarge(limit: limit) }
                try chunk.withUnsafeReadableBytes { raw in
                    hash.update(bufferPointer: raw)
                    var written = 0
                    while written < raw.count {
                        let n = write(descriptor, raw.baseAddress! + written, raw.count - written)
                        guard n > 0 else { throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: url.path]) }
                        written += n
                    }
                }
            }
        } catch {
            try? FileManager.default.removeItem(at: url)
            throw error
        }
        return StagedUpload(url: url, byteCount: count, digest: hash.finalize())
    }

    /// Removes uploads left half-received by a server that stopped mid-request. Only a server
    /// calls it, at start, before it listens (`obscura admin` opens the store beside a running
    /// server, whose uploads are in flight).
    func removeStagedUploads() throws {
        let folder = blobRoot.appendingPathComponent(BlobKind.staging.rawValue)
        for name in try FileManager.default.contentsOfDirectory(atPath: folder.path) where name.hasSuffix(".partial") {
            try? FileManager.default.removeItem(at: folder.appendingPathComponent(name))
        }
    }

    /// Stages bytes already in memory (stored jobs made outside a request: recovery tests).
    func stage(bytes: [UInt8]) async throws -> StagedUpload {
        let (chunks, continuation) = AsyncStream.makeStream(of: ByteBuffer.self)
        continuation.yield(ByteBuffer(bytes: bytes))
        continuation.finish()
        return try await stage(chunks, declaredLength: nil, limit: .max, deadline: .now + .seconds(60))
    }

    // MARK: Blobs

    private func blobURL(_ kind: BlobKind, id: String) -> URL {
        blobRoot.appendingPathComponent(kind.rawValue).appendingPathComponent(id + ".bin")
    }

    /// Moves a staged upload into place as a blob (a rename on the same file system: no copy).
    private func commit(_ upload: StagedUpload, as kind: BlobKind, id: String) throws {
        let url = blobURL(kind, id: id)
        if FileManager.default.fileExists(atPath: url.path) { try FileManager.default.removeItem(at: url) }
        try FileManager.default.moveItem(at: upload.url, to: url)
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

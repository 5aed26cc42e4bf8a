import Crypto
import Foundation
import NIOCore
import ObscuraAPI

/// What must survive a restart: tokens, registered keys and jobs as rows (``ServiceDatabase``:
/// SQLite through GRDB, one file, by default; or PostgreSQL, shared by a fleet), and their large
/// blobs (keys, inputs, results) as files in the data folder. A blob is in place before its row
/// is committed and goes with it, so a row never points at a partial file, and a refused
/// request never changes either. Every key and job row names its ``Owner``; the routes read and
/// delete only the requesting owner's.
public struct ServiceStore: Sendable {
    /// The kinds of blobs, one folder each; `staging` holds uploads still being received.
    enum BlobKind: String, CaseIterable {
        case keys, inputs, results, staging
    }

    private let rows: any ServiceDatabase
    private let blobRoot: URL

    /// Opens (or creates) the embedded store in `directory` (`obscura.sqlite` and the blobs)
    /// and brings its schema up to date.
    public init(directory: String) throws {
        let blobRoot = try Self.makeBlobFolders(in: directory)
        self.init(rows: try SQLiteServiceDatabase(path: URL(fileURLWithPath: directory).appendingPathComponent("obscura.sqlite").path), blobRoot: blobRoot)
    }

    private init(rows: any ServiceDatabase, blobRoot: URL) {
        self.rows = rows
        self.blobRoot = blobRoot
    }

    /// Opens the store with its rows where `database` says and its blobs in `directory` (for
    /// PostgreSQL, a folder every process of the fleet shares).
    public init(directory: String, database: DatabaseLocation) async throws {
        switch database {
        case .sqlite:
            try self.init(directory: directory)
        case .postgres(let address):
            let blobRoot = try Self.makeBlobFolders(in: directory)
            self.init(rows: try await PostgresServiceDatabase(address: address), blobRoot: blobRoot)
        }
    }

    private static func makeBlobFolders(in directory: String) throws -> URL {
        let root = URL(fileURLWithPath: directory, isDirectory: true).appendingPathComponent("blobs", isDirectory: true)
        for kind in BlobKind.allCases {
            try FileManager.default.createDirectory(at: root.appendingPathComponent(kind.rawValue), withIntermediateDirectories: true)
        }
        return root
    }

    /// A row the store cannot read back (written by something else than Obscura).
    struct CorruptRow: Error, CustomStringConvertible {
        let table: String, id: String, column: String
        var description: String { "the \(table) row \(id) has an unreadable \(column)" }
    }

    /// Whether `id` could name a key or a job (hex digests, UUIDs, and the plain names tests
    /// use): anything else, such as a client's id with a NUL byte, which PostgreSQL refuses as
    /// text, names nothing and never reaches the database.
    static func isWellFormed(id: String) -> Bool {
        (1...128).contains(id.utf8.count)
            && id.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x41...0x5a).contains($0) || (0x61...0x7a).contains($0) || $0 == 0x2d || $0 == 0x5f || $0 == 0x2e }
    }

    /// The statuses of jobs that still need their input and key, and of those that are over.
    static let unfinished = JobStatus.allCases.filter { !$0.isFinal }.map(\.rawValue)
    static let finished = JobStatus.allCases.filter(\.isFinal).map(\.rawValue)

    // MARK: Tokens

    /// Makes an API token named `name`; returns its text, which is not stored (only its SHA-256
    /// is) and cannot be shown again.
    public func createToken(name: String) async throws -> (token: String, record: APIToken) {
        let (token, record) = APIToken.generate(name: name, now: Date().timeIntervalSince1970)
        try await rows.insertToken(record, digest: APIToken.digest(of: token))
        return (token, record)
    }

    /// Every token, revoked ones included, oldest first.
    public func tokens() async throws -> [APIToken] { try await rows.tokens() }

    /// Revokes a token: from now on it gets 401. Its finished jobs expire as usual; its keys
    /// stay until an operator purges them (``purge(owner:)``). Returns the token as it now is, or nil if there is no such id.
    public func revokeToken(id: String) async throws -> APIToken? {
        try await rows.revokeToken(id: id, at: Date().timeIntervalSince1970)
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
        let (jobs, keys) = try await rows.holdings(of: owner)
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
        try await rows.ownerID(forDigest: APIToken.digest(of: token)).map(Owner.init(id:))
    }

    // MARK: Keys

    /// The owner's key with this id, if registered.
    func key(id: String, owner: Owner) async throws -> RegisteredKey? {
        guard Self.isWellFormed(id: id) else { return nil }
        return try await rows.key(id: id, owner: owner)
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
            return try await rows.register(key, owner: owner, quota: quota) { try commit(upload, as: .keys, id: key.id) }
        } catch {
            // A failed insert or commit leaves no row: the file moved into place must go too.
            if try await self.key(id: key.id, owner: owner) == nil { removeBlob(.keys, id: key.id) }
            throw error
        }
    }

    /// Bytes of the owner's stored keys.
    func storedKeyBytes(owner: Owner) async throws -> Int {
        try await rows.storedKeyBytes(owner: owner)
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
        guard Self.isWellFormed(id: id) else { return .notFound }
        // Inside the transaction: a registration of the same key waits for it to end.
        return try await rows.deleteKey(id: id, owner: owner) { removeBlob(.keys, id: id) }
    }

    // MARK: Jobs

    /// The job with this id, if `owner` (nil: any owner, for the server's own work) has one.
    public func job(id: String, owner: Owner?) async throws -> InferenceJob? {
        guard Self.isWellFormed(id: id) else { return nil }
        return try await rows.job(id: id, owner: owner)
    }

    /// What a submission came to.
    enum Admission: Equatable {
        case admitted
        /// Refused, nothing stored: the queue holds `capacity` unfinished jobs (all owners).
        case queueFull(capacity: Int)
        /// Refused, nothing stored: the owner has this many jobs queued or running.
        case tooManyUnfinished(Int)
        /// Refused, nothing stored: the hourly quota is used up until `retryAfter` seconds from now.
        case tooManyThisHour(retryAfter: Int)

        /// The hourly quota's answer, given the times of the owner's submissions in the last hour
        /// (oldest first): nil when one more is allowed, else when waiting frees one.
        static func hourlyRefusal(lastHour: [Double], quotas: Quotas, now: Double) -> Admission? {
            let allowed = max(0, quotas.jobsPerHour)
            guard lastHour.count >= allowed else { return nil }
            // Waiting frees the oldest submissions that put the owner over the quota.
            let freedAt = (allowed == 0 ? now : lastHour[lastHour.count - allowed]) + 3600
            return .tooManyThisHour(retryAfter: max(1, Int((freedAt - now).rounded(.up))))
        }
    }

    /// Stores a new job's input and row for `owner` if the queue's capacity and the owner's
    /// quotas allow; the checks, the input and the row are one write transaction, so concurrent
    /// submissions cannot overshoot either. The job's `createdAt` is the submission's time.
    @discardableResult
    func insert(_ job: InferenceJob, input: StagedUpload, owner: Owner = .anonymous, quotas: Quotas = .unlimited,
                capacity: Int = .max) async throws -> Admission {
        do {
            return try await rows.admit(job, owner: owner, quotas: quotas, capacity: capacity) { try commit(input, as: .inputs, id: job.id) }
        } catch {
            // A failed insert or commit leaves no row (the id is new): its input must go too.
            removeBlob(.inputs, id: job.id)
            throw error
        }
    }

    /// Claims for `worker` the oldest job of one of `models` (nil: any) that is queued, or whose
    /// worker's lease has ended (``ServiceDatabase/claimNext(worker:models:leaseSeconds:)``).
    func claimNext(worker: String, models: [String]? = nil, leaseSeconds: Double) async throws -> InferenceJob? {
        try await rows.claimNext(worker: worker, models: models, leaseSeconds: leaseSeconds)
    }

    /// Extends a claimed job's lease and records its progress; false once another worker holds it.
    func renewLease(id: String, worker: String, leaseSeconds: Double, progress: Double, stage: String?) async throws -> Bool {
        try await rows.renewLease(id: id, worker: worker, leaseSeconds: leaseSeconds, progress: progress, stage: stage)
    }

    /// The worker holding a running job's lease (host/process/index).
    func leaseHolder(of id: String) async throws -> String? {
        try await rows.leaseHolder(of: id)
    }

    /// Records a claimed job's outcome, with its result when it is done, if `worker` still holds
    /// its lease; false, with nothing written, if another worker took it over.
    func complete(_ job: InferenceJob, result: [UInt8]?, worker: String) async throws -> Bool {
        try await rows.complete(job, worker: worker) {
            if let result { try writeBlob(.results, id: job.id, bytes: result) }
        }
    }

    /// Puts the jobs a previous run of a lone server left running back in the queue (with
    /// PostgreSQL, none: a fleet finds them by their leases ending). Returns the queued jobs.
    func requeueInterrupted() async throws -> [InferenceJob] {
        try await rows.requeueRunning()
    }

    /// The job's encrypted input.
    func inputBytes(id: String) throws -> [UInt8] { try readBlob(.inputs, id: id) }

    /// Deletes a finished (done or failed) job of `owner` (nil: any owner, for the sweeper): its
    /// row, then its input and result; a job still queued or running is left as it is.
    func deleteJob(id: String, owner: Owner?) async throws -> Deletion {
        guard Self.isWellFormed(id: id) else { return .notFound }
        let outcome = try await rows.deleteJob(id: id, owner: owner)
        if outcome == .deleted {
            removeBlob(.inputs, id: id)
            removeBlob(.results, id: id)
        }
        return outcome
    }

    /// Gives every finished job the expiry that `retention` (seconds, nil: none) sets from its
    /// finishing time, so that a restart with another retention, or a database from before
    /// expiry existed, holds no stale date.
    func setExpiry(retention: Double?, onlyUnset: Bool = false) async throws {
        try await rows.setExpiry(retention: retention, onlyUnset: onlyUnset)
    }

    /// Whether other processes share these rows (PostgreSQL): their workers run jobs too.
    var isShared: Bool { rows is PostgresServiceDatabase }

    /// Finished jobs whose expiry is at or before `now` (seconds since 1970), oldest first.
    func expiredJobs(now: Double) async throws -> [String] {
        try await rows.expiredJobs(now: now)
    }

    /// The job's encrypted result.
    func resultBytes(id: String) throws -> [UInt8] { try readBlob(.results, id: id) }

    /// What the stored jobs add up to.
    struct Statistics: Sendable {
        /// Jobs per status.
        var counts: [JobStatus: Int] = [:]
        /// The mean evaluation time of finished jobs, per model.
        var meanSeconds: [String: Double] = [:]
        /// Bootstraps and evaluation seconds of the finished jobs that bootstrap, all models together.
        var bootstrapTotals: (bootstraps: Int, seconds: Double) = (0, 0)

        /// Jobs queued or running.
        var unfinished: Int { (counts[.queued] ?? 0) + (counts[.running] ?? 0) }
    }

    func statistics() async throws -> Statistics {
        try await rows.statistics()
    }

    /// Jobs stored, whatever their status or owner.
    public func jobCount() async throws -> Int {
        try await statistics().counts.values.reduce(0, +)
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

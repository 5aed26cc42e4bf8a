import Foundation
import ObscuraAPI

/// Where a store keeps its rows (tokens, keys, jobs). The blobs (keys, inputs, results) are
/// files in the data folder either way: with PostgreSQL that folder is shared by every process
/// of the fleet (one machine's disk, or a network file system).
public enum DatabaseLocation: Sendable, Equatable {
    /// `obscura.sqlite` in the data folder (GRDB): one server process, the embedded default.
    case sqlite
    /// A PostgreSQL database shared by API servers and `obscura worker` processes.
    case postgres(PostgresAddress)

    /// Reads `--database`: nil or empty is SQLite, a `postgres://` or `postgresql://` URL is PostgreSQL.
    public init(_ text: String?) throws(PostgresAddress.Error) {
        guard let text, !text.isEmpty else { self = .sqlite; return }
        self = .postgres(try PostgresAddress(url: text))
    }
}

/// A PostgreSQL server and database, from a URL
/// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=disable|require]`.
public struct PostgresAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var user: String
    public var password: String?
    public var database: String
    /// TLS to the server (`sslmode=require`); off by default, for a server on loopback or a private network.
    public var requiresTLS: Bool

    public enum Error: Swift.Error, Equatable, CustomStringConvertible {
        case invalid(String, reason: String)

        public var description: String {
            switch self {
            case .invalid(let url, let reason): "invalid database URL \(url): \(reason) (expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE)"
            }
        }
    }

    public init(url text: String) throws(Error) {
        // An error never echoes the password: it shows the URL rebuilt from its parts without
        // one, or, when the text does not parse, none of it.
        guard let components = URLComponents(string: text), let scheme = components.scheme else { throw .invalid("(not shown)", reason: "not a URL") }
        let shown = "\(scheme)://\(components.user.map { $0 + (components.password == nil ? "" : ":***") + "@" } ?? "")\(components.host ?? "")"
            + "\(components.port.map { ":\($0)" } ?? "")\(components.path)"
        guard scheme == "postgres" || scheme == "postgresql" else { throw .invalid(shown, reason: "the scheme must be postgres://") }
        guard let host = components.host, !host.isEmpty else { throw .invalid(shown, reason: "no host") }
        guard let user = components.user, !user.isEmpty else { throw .invalid(shown, reason: "no user") }
        let database = String(components.path.drop { $0 == "/" })
        guard !database.isEmpty, !database.contains("/") else { throw .invalid(shown, reason: "no database name") }
        let port = components.port ?? 5432
        guard (1...65535).contains(port) else { throw .invalid(shown, reason: "port \(port)") }
        var requiresTLS = false
        for item in components.queryItems ?? [] {
            switch (item.name, item.value) {
            case ("sslmode", "disable"): requiresTLS = false
            case ("sslmode", "require"): requiresTLS = true
            default: throw .invalid(shown, reason: "unknown option \(item.name)=\(item.value ?? "")")
            }
        }
        self.host = host
        self.port = port
        self.user = user
        self.password = components.password
        self.database = database
        self.requiresTLS = requiresTLS
    }

    /// The URL without its password.
    public var description: String { "postgres://\(user)@\(host):\(port)/\(database)" }
}

/// The rows of a ``ServiceStore``: one implementation over SQLite, one over PostgreSQL, with the
/// same meaning. Each method that checks and then writes is one transaction: the quotas and
/// the queue's capacity hold under concurrent requests from any number of processes. The blob
/// closures run inside the transaction, so a row and its file appear (or go) together.
///
/// Jobs are claimed under a lease: a worker marks the oldest claimable job running with its
/// name and a lease end, renews the lease while it works, and completes the job only while the
/// lease is still its own. A job whose lease has ended (its worker died) is claimable again,
/// and its `attempts` count the claims.
protocol ServiceDatabase: Sendable {
    // MARK: Tokens
    func insertToken(_ record: APIToken, digest: String) async throws
    func tokens() async throws -> [APIToken]
    func revokeToken(id: String, at time: Double) async throws -> APIToken?
    func ownerID(forDigest digest: String) async throws -> String?

    // MARK: Keys
    func key(id: String, owner: Owner) async throws -> RegisteredKey?
    func register(_ key: RegisteredKey, owner: Owner, quota: Int, storeBlob: @Sendable () throws -> Void) async throws -> ServiceStore.Registration
    func storedKeyBytes(owner: Owner) async throws -> Int
    func deleteKey(id: String, owner: Owner, removeBlob: @Sendable () -> Void) async throws -> ServiceStore.Deletion

    // MARK: Jobs
    /// The ids of the owner's jobs and keys.
    func holdings(of owner: Owner) async throws -> (jobs: [String], keys: [String])
    func job(id: String, owner: Owner?) async throws -> InferenceJob?
    /// Stores a job within the owner's quotas and the queue's `capacity` (jobs not finished, all owners).
    func admit(_ job: InferenceJob, owner: Owner, quotas: Quotas, capacity: Int, storeBlob: @Sendable () throws -> Void) async throws -> ServiceStore.Admission
    /// Deletes a finished job's row; its blobs are the caller's to remove.
    func deleteJob(id: String, owner: Owner?) async throws -> ServiceStore.Deletion
    /// Sets each finished job's expiry to `retention` after its finishing (nil: none); with
    /// `onlyUnset`, only of jobs without one (those that workers of other processes finished).
    func setExpiry(retention: Double?, onlyUnset: Bool) async throws
    func expiredJobs(now: Double) async throws -> [String]
    /// Puts every running job back in the queue (a lone server restarting: none of them has a worker).
    func requeueRunning() async throws -> [InferenceJob]
    func statistics() async throws -> ServiceStore.Statistics

    // MARK: Leases
    /// Marks the oldest queued job of one of `models` (nil: of any), or running job whose lease has ended,
    /// running under `worker`'s lease for `leaseSeconds`, counting the attempt; nil when there is
    /// none. Times are the database's clock.
    func claimNext(worker: String, models: [String]?, leaseSeconds: Double) async throws -> InferenceJob?
    /// Extends the worker's lease by `leaseSeconds` from now and records its progress; false when
    /// the lease is no longer its own.
    func renewLease(id: String, worker: String, leaseSeconds: Double, progress: Double, stage: String?) async throws -> Bool
    /// The worker whose lease the job is under, if it is running.
    func leaseHolder(of id: String) async throws -> String?
    /// Writes the finished job (done or failed) and ends the lease, if the lease is still the
    /// worker's; `storeBlob` runs once the lease is checked, inside the transaction. False, with nothing written, otherwise.
    func complete(_ job: InferenceJob, worker: String, storeBlob: @Sendable () throws -> Void) async throws -> Bool
}

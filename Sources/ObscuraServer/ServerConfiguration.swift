/// How an Obscura server listens, where it keeps its state and how much work it accepts.
public struct ServerConfiguration: Sendable {
    /// The address to bind: loopback unless the operator says otherwise.
    public var host: String
    /// The port; 0 picks a free one (the server reports it once listening).
    public var port: Int
    /// The folder holding the blobs (keys, inputs, results) and, with SQLite, the database
    /// (`obscura.sqlite`). With PostgreSQL, every API server and worker of the fleet shares it.
    public var dataDirectory: String
    /// Where the rows are: SQLite in the data folder (the default), or a PostgreSQL database
    /// that `obscura worker` processes share.
    public var database: DatabaseLocation
    /// Workers' leases on the jobs they run.
    public var leases: LeaseTiming
    /// Jobs accepted and not yet finished (queued plus running); beyond it, 503 with Retry-After.
    public var queueCapacity: Int
    /// Jobs evaluated at once in this process. Each job already uses every core, so 1 is the
    /// default; 0 (PostgreSQL only) serves the API and leaves the jobs to `obscura worker` processes.
    public var workers: Int
    /// The largest evaluation key accepted; `nil` (the default): the largest seeded key of the
    /// served models (int4-128's is about 30 MB, int6-128's about 282 MB, CryptoNets' BFV latency
    /// keys 115 MB), so that their keys fit and nothing larger is ever buffered. A key's exact
    /// size is then checked against its own set when it is read.
    public var maxKeyBytes: Int?
    /// The largest encrypted TFHE input accepted (an RLWE model's inputs have an exact size,
    /// its plan's, which is the limit for them).
    public var maxInputBytes: Int
    /// Evaluation keys kept expanded in memory (each about 60 MB in the Fourier domain).
    public var cachedKeys: Int
    /// How long a finished job (its row, encrypted input and result) is kept before a sweeper
    /// deletes it, in seconds; nil keeps it until a client deletes it. Default: one day.
    public var resultRetention: Double?
    /// Who may use the API: token holders (the default), or anyone who reaches the port.
    public var access: Access
    /// What each owner may hold and submit.
    public var quotas: Quotas
    /// Seconds a request body may take to arrive (408 after); the largest keys (int6-128's
    /// 282 MB) need a few seconds on a fast network.
    public var uploadSeconds: Double
    /// Seconds a connection may stay silent (no bytes from the client, mid-request included)
    /// before the server closes it.
    public var idleSeconds: Double
    /// Connections open at once; further ones wait in the listen backlog until one closes.
    public var maxConnections: Int
    /// Uploads (keys, inputs) received and checked at once, in all and per owner; beyond,
    /// 503 with Retry-After.
    public var maxUploads: Int
    public var maxUploadsPerOwner: Int

    /// Who may use the API's routes for keys and inferences (`/healthz`, `/metrics`, `/v1/models`
    /// and the OpenAPI document are open).
    public enum Access: Sendable, Equatable {
        /// Requests carry an API token of this server's store (`Authorization: Bearer`); each
        /// token is an owner that sees only its own keys and jobs.
        case tokens
        /// No authentication: every request is the one anonymous owner's. For a server on
        /// loopback that one user trusts (the demo, `obscura serve --no-auth`).
        case open
    }

    public init(host: String = "127.0.0.1", port: Int = 8080, dataDirectory: String, queueCapacity: Int = 16,
                workers: Int = 1, maxKeyBytes: Int? = nil, maxInputBytes: Int = 4 << 20, cachedKeys: Int = 4,
                resultRetention: Double? = 86_400, access: Access = .tokens, quotas: Quotas = .standard,
                uploadSeconds: Double = 300, idleSeconds: Double = 60, maxConnections: Int = 256, maxUploads: Int = 4,
                maxUploadsPerOwner: Int = 2, database: DatabaseLocation = .sqlite, leases: LeaseTiming? = nil) {
        self.host = host
        self.port = port
        self.dataDirectory = dataDirectory
        self.queueCapacity = queueCapacity
        self.workers = workers
        self.maxKeyBytes = maxKeyBytes
        self.maxInputBytes = maxInputBytes
        self.cachedKeys = cachedKeys
        self.resultRetention = resultRetention
        self.access = access
        self.quotas = quotas
        self.uploadSeconds = uploadSeconds
        self.idleSeconds = idleSeconds
        self.maxConnections = maxConnections
        self.maxUploads = maxUploads
        self.maxUploadsPerOwner = maxUploadsPerOwner
        self.database = database
        self.leases = leases ?? .standard(for: database)
    }

    /// ``uploadSeconds`` as a duration (a non-finite or non-positive value: the default, 300 s).
    var uploadLimit: Duration { Self.duration(seconds: uploadSeconds, default: 300) }

    /// ``idleSeconds`` as a duration (a non-finite or non-positive value: the default, 60 s).
    var idleLimit: Duration { Self.duration(seconds: idleSeconds, default: 60) }

    private static func duration(seconds: Double, default fallback: Double) -> Duration {
        .milliseconds(Int64(((seconds.isFinite && seconds > 0) ? min(seconds, 1e9) : fallback) * 1000))
    }

    /// How often the sweeper looks for expired jobs: a tenth of the retention, between 0.1 s and a minute.
    var sweepInterval: Double {
        min(60, max(0.1, (resultRetention ?? 600) / 10))
    }

    /// The key size limit in force: the configured one, or the largest key of the served models.
    public func keyByteLimit(largestServedKey: Int) -> Int {
        maxKeyBytes ?? largestServedKey
    }
}

/// A configuration that cannot run, with the reason.
public struct ServerConfigurationError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

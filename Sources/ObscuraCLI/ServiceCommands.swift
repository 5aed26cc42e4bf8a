import ArgumentParser
import Foundation
import NeuralNet
import ObscuraAPI
import ObscuraClient
import ObscuraServer
import PrivateInference
import TFHE

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the private inference server (HTTP API v1, see openapi.json) over the bundled models.")

    @Option(help: "Address to bind (loopback by default; 0.0.0.0 exposes it).") var host = "127.0.0.1"
    @Option(help: "Port to listen on.") var port = 8080
    @OptionGroup var store: StoreOptions
    @Option(help: "Jobs accepted and not yet finished, at most (then 503).") var queue = 16
    @Option(help: "Jobs evaluated at once in this process (each already uses all cores); 0 with --database: leave them to `obscura worker` processes.")
    var workers = 1
    @Option(help: "Hours a finished job's encrypted input and result are kept before they are deleted (0: until a client deletes them); in a fleet, give every API server the same.")
    var retentionHours = 24.0
    @OptionGroup var work: WorkOptions
    @Flag(help: "Serve without API tokens: every request is one anonymous user's. Only for a loopback server one person trusts.")
    var noAuth = false
    @Option(help: "Per token: megabytes of evaluation keys stored at once (then 429).") var quotaKeyMb = Quotas.standard.storedKeyBytes >> 20
    @Option(help: "Per token: inferences queued or running at once (then 429).") var quotaUnfinished = Quotas.standard.unfinishedJobs
    @Option(help: "Per token: inferences submitted in any hour (then 429).") var quotaJobsPerHour = Quotas.standard.jobsPerHour
    @Option(help: "Seconds a request body may take to arrive (then 408).") var uploadSeconds = 300.0
    @Option(help: "Seconds a connection may stay silent, mid-request included, before it is closed.") var idleSeconds = 60.0
    @Option(help: "Connections open at once (more wait to be accepted).") var maxConnections = 256
    @Option(help: "Uploads (keys, inputs) received and checked at once (then 503); memory grows with each.") var maxUploads = 4
    @Option(help: "Of those, uploads one token may have in flight at once (then 503).") var maxUploadsPerToken = 2

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be in 0...65535") }
        guard queue >= 1 else { throw ValidationError("--queue must be at least 1") }
        guard retentionHours >= 0, retentionHours.isFinite else { throw ValidationError("--retention-hours must be 0 or more, got \(retentionHours)") }
        guard workers >= 1 || (workers == 0 && store.databaseURL != nil) else {
            throw ValidationError("--workers must be at least 1 (0 only with --database, where `obscura worker` processes run the jobs)")
        }
        guard quotaKeyMb >= 1, quotaKeyMb <= Int.max >> 20, quotaUnfinished >= 1, quotaJobsPerHour >= 1 else {
            throw ValidationError("--quota-key-mb, --quota-unfinished and --quota-jobs-per-hour must be at least 1")
        }
        guard !noAuth || ["127.0.0.1", "::1", "localhost"].contains(host) else {
            throw ValidationError("--no-auth serves anyone who reaches the port: use it only with a loopback --host, not \(host)")
        }
        guard uploadSeconds > 0, uploadSeconds < 1e6, idleSeconds > 0, idleSeconds < 1e6, maxConnections >= 1, maxUploads >= 1, maxUploadsPerToken >= 1 else {
            throw ValidationError("--upload-seconds and --idle-seconds must be positive (under 10^6) and --max-connections, --max-uploads and --max-uploads-per-token at least 1")
        }
    }

    func run() async throws {
        let quotas = Quotas(storedKeyBytes: quotaKeyMb << 20, unfinishedJobs: quotaUnfinished, jobsPerHour: quotaJobsPerHour)
        let database = try store.location()
        let configuration = ServerConfiguration(host: host, port: port, dataDirectory: store.dataDir, queueCapacity: queue, workers: workers,
                                                resultRetention: retentionHours > 0 ? retentionHours * 3600 : nil, access: noAuth ? .open : .tokens, quotas: quotas,
                                                uploadSeconds: uploadSeconds, idleSeconds: idleSeconds, maxConnections: maxConnections,
                                                maxUploads: maxUploads, maxUploadsPerOwner: maxUploadsPerToken,
                                                database: database, leases: work.leases(database: database))
        let server = try await ObscuraServer(configuration: configuration, models: try work.registry())
        let dataDir = store.dataDir
        let tokens = try await server.store.tokens().filter { $0.revokedAt == nil }.count
        try await server.run { port in
            print("obscura: serving \(server.models.entries.map(\.listing.name).joined(separator: ", ")) on http://\(host):\(port) (\(store.summary))")
            if noAuth {
                print("obscura: --no-auth: anyone who reaches this port can use it")
            } else {
                print("obscura: \(tokens) active API token(s)" + (tokens == 0 ? "; make one with `obscura admin create-token --data-dir \(dataDir)`" : ""))
            }
            fflush(nil)
        }
    }
}

/// The operator's commands on a server's data folder (a running server sees their effect at once).
struct Admin: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage a server's API tokens in its data folder.",
        subcommands: [CreateToken.self, RevokeToken.self, ListTokens.self])


    struct CreateToken: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make an API token and print it on standard output (shown only this once: the server keeps its hash); makes the data folder if it is new.")
        @OptionGroup var folder: StoreOptions
        @Option(help: "Who or what the token is for.") var name = "unnamed"

        func run() async throws {
            let (token, record) = try await folder.open(create: true).createToken(name: name)
            print(token)
            FileHandle.standardError.write(Data("created token \(record.id) (\(record.name)); clients send it as `Authorization: Bearer …` (obscura infer reads OBSCURA_TOKEN)\n".utf8))
        }
    }

    struct RevokeToken: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke an API token by its id: from now on it gets 401.")
        @OptionGroup var folder: StoreOptions
        @Argument(help: "The token's id (from `obscura admin list-tokens`).") var id: String
        @Flag(help: "Also delete the token's keys and finished inferences (their rows and files).") var purge = false

        func run() async throws {
            let store = try await folder.open()
            guard let token = try await store.revokeToken(id: id) else { throw ValidationError("no token with id \(id)") }
            print("revoked token \(token.id) (\(token.name))")
            if purge {
                let removed = try await store.purge(owner: Owner(id: token.id))
                print("deleted \(removed.jobs) inference(s) and \(removed.keys) key(s)"
                      + (removed.kept > 0 ? "; \(removed.kept) unfinished inference(s) or key(s) in use kept: purge again once they finish" : ""))
            }
        }
    }

    struct ListTokens: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the API tokens: id, name, created, revoked.")
        @OptionGroup var folder: StoreOptions

        func run() async throws {
            for token in try await folder.open().tokens() {
                let created = Date(timeIntervalSince1970: token.createdAt).formatted(.iso8601)
                let state = token.revokedAt.map { "revoked \(Date(timeIntervalSince1970: $0).formatted(.iso8601))" } ?? "active"
                print("\(token.id)  \(created)  \(state)  \(token.name)")
            }
        }
    }
}

/// Where a server's state is: its data folder (the blobs, and the SQLite database by default)
/// and, for a fleet, the PostgreSQL database that every API server and worker shares.
struct StoreOptions: ParsableArguments {
    @Option(help: "Folder for the stored keys, inputs and results (and the SQLite database); a fleet's processes share it.")
    var dataDir = "obscura-data"
    @Option(name: .customLong("database"), help: "A PostgreSQL URL, postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE, for a fleet of servers and workers (or $OBSCURA_DATABASE). Default: SQLite in --data-dir.")
    var databaseOption: String?

    /// The URL given by option or environment (the environment keeps a password out of `ps`).
    var databaseURL: String? { databaseOption ?? ProcessInfo.processInfo.environment["OBSCURA_DATABASE"].flatMap { $0.isEmpty ? nil : $0 } }

    func validate() throws {
        _ = try location()
    }

    func location() throws -> DatabaseLocation {
        do { return try DatabaseLocation(databaseURL) } catch { throw ValidationError(error.description) }
    }

    /// Where the state is, for a start-up line (no password).
    var summary: String {
        switch try? location() {
        case .postgres(let address): "rows in \(address), blobs in \(dataDir)"
        default: "state in \(dataDir)"
        }
    }

    /// The store; `create` makes a new folder's (a token may come before the first `serve`),
    /// otherwise a folder without SQLite data is a mistyped path.
    func open(create: Bool = false) async throws -> ServiceStore {
        let location = try location()
        guard create || location != .sqlite || FileManager.default.fileExists(atPath: dataDir + "/obscura.sqlite") else {
            throw ValidationError("no server data in \(dataDir) (start `obscura serve --data-dir \(dataDir)` once, or pass --data-dir)")
        }
        return try await ServiceStore(directory: dataDir, database: location)
    }
}

/// What the processes that run jobs share: the models and the leases.
struct WorkOptions: ParsableArguments {
    @Option(name: .customLong("model"), help: "A model to serve (bundled name or file; repeatable; a TFHE CNN may add @scores, to answer with its scores' digits only; a polynomial network may add @latency-bfv, @throughput-bfv, @latency-ckks or @throughput-ckks). Default: every bundled model a backend runs.")
    var models: [String] = []
    @Option(help: "Seconds a worker's claim on a job lasts unrenewed (renewed every third of it): a dead worker's job runs again this long after.")
    var leaseSeconds = 30.0

    func validate() throws {
        guard leaseSeconds >= 1, leaseSeconds <= 3600 else { throw ValidationError("--lease-seconds must be in 1...3600, got \(leaseSeconds)") }
    }

    func leases(database: DatabaseLocation) -> LeaseTiming {
        .standard(for: database, seconds: leaseSeconds)
    }

    func registry() throws -> ModelRegistry {
        models.isEmpty ? try ModelRegistry.bundled() : try ModelRegistry.loading(models)
    }
}

/// A worker process of a fleet on PostgreSQL.
struct Worker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run jobs that a fleet's API servers (`obscura serve --database …`) stored, on this machine, until SIGTERM or SIGINT.")

    @OptionGroup var store: StoreOptions
    @OptionGroup var work: WorkOptions
    @Option(help: "Jobs evaluated at once in this process (each already uses all cores).") var workers = 1

    func validate() throws {
        guard store.databaseURL != nil else { throw ValidationError("a worker needs the fleet's PostgreSQL database: pass --database postgres://… (or set OBSCURA_DATABASE)") }
        guard workers >= 1 else { throw ValidationError("--workers must be at least 1") }
    }

    func run() async throws {
        guard case .postgres(let address) = try store.location() else { throw ValidationError("--database must be a postgres:// URL") }
        let worker = try await ObscuraWorker(dataDirectory: store.dataDir, database: address, models: try work.registry(), workers: workers,
                                             leases: work.leases(database: .postgres(address)))
        print("obscura worker: running \(worker.models.entries.map(\.listing.name).joined(separator: ", ")) for \(store.summary)")
        fflush(nil)
        try await worker.run()
    }
}

/// Runs `body` against an Obscura server started in this process on a free loopback port, with
/// its state in a temporary folder; stops the server and removes the folder afterwards, also when
/// `body` throws (the demo and `bench service`). With a `fleet`, the rows are in its PostgreSQL
/// database and its worker processes (`obscura worker`, started here and stopped with SIGTERM)
/// run the jobs instead of the server.
func withLoopbackServer<T>(models: ModelRegistry, queueCapacity: Int = 16, fleet: LoopbackFleet? = nil,
                           _ body: (ObscuraServer, RunningServer) async throws -> T) async throws -> T {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("obscura-\(UUID().uuidString)").path
    defer { try? FileManager.default.removeItem(atPath: directory) }
    // One user in one process: no tokens, no per-user quotas (the queue's capacity still holds).
    let configuration = ServerConfiguration(port: 0, dataDirectory: directory, queueCapacity: queueCapacity, workers: fleet == nil ? 1 : 0,
                                            access: .open, quotas: .unlimited, maxUploads: 1 << 20,
                                            database: fleet.map { .postgres($0.database) } ?? .sqlite)
    let server = try await ObscuraServer(configuration: configuration, models: models, logLevel: .warning)
    // Its workers would take any job of the model: a database in use is not a bench's.
    if fleet != nil, try await server.store.jobCount() > 0 {
        throw ValidationError("the bench's database already holds jobs: give it an empty database of its own (createdb …)")
    }
    let workers = try fleet?.startWorkers(directory: directory) ?? []
    defer {
        for worker in workers { worker.terminate() }
        for worker in workers { worker.waitUntilExit() }
    }
    let running = try await server.start()
    do {
        let result = try await body(server, running)
        await running.stop()
        return result
    } catch {
        await running.stop()
        throw error
    }
}

/// Worker processes of this same executable beside a loopback server, on a PostgreSQL database.
struct LoopbackFleet {
    let database: PostgresAddress
    let databaseURL: String
    let processes: Int
    /// The `--model` arguments the workers take (the server's models).
    let models: [String]

    func startWorkers(directory: String) throws -> [Process] {
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        return try (0..<processes).map { _ in
            let process = Process()
            process.executableURL = executable
            process.arguments = ["worker", "--data-dir", directory] + models.flatMap { ["--model", $0] }
            // The URL through the environment: a password on a command line shows in `ps`.
            process.environment = ProcessInfo.processInfo.environment.merging(["OBSCURA_DATABASE": databaseURL]) { $1 }
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            return process
        }
    }
}

/// The client's files: where `keygen` writes and the other client commands read.
struct KeyFolderOption: ParsableArguments {
    @Option(help: "The client's key folder (secret.osk stays here; evaluation.obk is what the server gets).")
    var keys = "obscura-keys"

    var secretKeyPath: String { keys + "/secret.osk" }
    var evaluationKeyPath: String { keys + "/evaluation.obk" }

    func secretKey() throws -> SecretKey {
        try SecretKey(deserializing: try readBytes(secretKeyPath, what: "secret key (run `obscura keygen` first)"))
    }
}

struct Keygen: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make a client's secret key and the evaluation key a server needs for a model's parameter set.")

    @Option(help: "A bundled model name or a model file.") var model = "paper-bnn-sign-mnist"
    @OptionGroup var folder: KeyFolderOption

    func run() throws {
        let plan = try InferencePlan.served(model: try ModelCatalog.load(model))
        let secret = SecretKey(parameters: plan.parameters)
        try createPrivateDirectory(folder.keys)
        try writeBytes(secret.serialized(), to: folder.secretKeyPath, permissions: 0o600)
        let evaluation = secret.makeEvaluationKey().serialized()
        try writeBytes(evaluation, to: folder.evaluationKeyPath)
        print("secret key (\(plan.parameters.name), \(plan.parameters.securityBits)-bit): \(folder.secretKeyPath) — never send it anywhere")
        print(String(format: "evaluation key: %@ (%.1f MB)", folder.evaluationKeyPath, Double(evaluation.count) / 1e6))
    }
}

/// A record of a dataset: the bundled sample of the model's dataset unless `--data` names a folder.
struct RecordOptions: ParsableArguments {
    @Option(help: "A bundled model name or a model file.") var model = "paper-bnn-sign-mnist"
    @Option(help: "Dataset folder (default: the small bundled sample of the model's dataset).") var data: String?
    @Option(help: "The record's index in the dataset.") var record = 0

    func load() throws -> (ModelFile, InferencePlan, Dataset) {
        let file = try ModelCatalog.load(model)
        let dataset = try data.map { try file.datasetKind.evaluationData(folder: $0) } ?? Dataset.bundledSample(file.datasetKind)
        guard (0..<dataset.count).contains(record) else {
            throw ValidationError("--record \(record) is outside \(dataset.name)'s 0..<\(dataset.count)")
        }
        return (file, try InferencePlan.served(model: file), dataset)
    }
}

struct Encrypt: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Binarize and encrypt one record under the client's secret key.")

    @OptionGroup var record: RecordOptions
    @OptionGroup var folder: KeyFolderOption
    @Option(help: "Where to write the encrypted input.") var out = "input.bin"

    func run() throws {
        let (_, plan, dataset) = try record.load()
        var client = InferenceClient(plan: plan, secretKey: try folder.secretKey())
        let bytes = try client.encryptForUpload(dataset.sample(record.record))
        try writeBytes(bytes, to: out)
        print("encrypted record \(record.record) of \(dataset.name) (label \(dataset.labels[record.record])): \(out), \(bytes.count) bytes")
    }
}

struct Infer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send an encrypted input to a server, wait for the encrypted result and save it (registers the evaluation key if needed).")

    @Option(help: "The server, e.g. http://127.0.0.1:8080.") var server: String
    @Option(help: "A bundled model name or a model file.") var model = "paper-bnn-sign-mnist"
    @OptionGroup var folder: KeyFolderOption
    @Option(help: "The encrypted input (from `obscura encrypt`).") var input = "input.bin"
    @Option(help: "Where to write the encrypted result.") var out = "result.bin"
    @Flag(help: "Leave the job (its encrypted input and result) on the server; by default it is deleted once the result is saved.")
    var keepOnServer = false
    @Option(help: "The API token (default: the OBSCURA_TOKEN environment variable, which keeps it out of the process list).")
    var token: String?

    func run() async throws {
        guard let url = URL(string: server), url.scheme != nil else { throw ValidationError("--server must be a URL such as http://127.0.0.1:8080") }
        let service = ServiceClient(baseURL: url, token: token ?? ProcessInfo.processInfo.environment["OBSCURA_TOKEN"])
        let plan = try InferencePlan.served(model: try ModelCatalog.load(model))
        var keyID: String?
        if plan.bootstrapsPerInference > 0 {
            keyID = try await service.registerKey(try readBytes(folder.evaluationKeyPath, what: "evaluation key"), forModel: plan.modelName).id
        }
        let job = try await service.submit(model: plan.modelName, keyID: keyID, input: try readBytes(input, what: "encrypted input"))
        let bar = JobProgressBar(label: "inference \(job.id.prefix(8))")
        let result = try await service.waitForResult(job.id) { bar.show($0) }
        bar.finish()
        try writeBytes(result, to: out)
        print("encrypted result: \(out), \(result.count) bytes")
        if !keepOnServer {
            // The result is saved: a failed deletion is worth a warning, not a failed command.
            do {
                try await service.deleteJob(job.id)
                print("deleted inference \(job.id) on the server (--keep-on-server keeps it)")
            } catch {
                print("warning: the server kept inference \(job.id): \(error)")
            }
        }
    }
}

struct Decrypt: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Decrypt a result with the client's secret key and print the class and scores.")

    @Option(help: "A bundled model name or a model file.") var model = "paper-bnn-sign-mnist"
    @OptionGroup var folder: KeyFolderOption
    @Option(help: "The encrypted result (from `obscura infer`).") var result = "result.bin"

    func run() throws {
        let plan = try InferencePlan.served(model: try ModelCatalog.load(model))
        let client = InferenceClient(plan: plan, secretKey: try folder.secretKey())
        let scores = try client.decryptScores(serialized: try readBytes(result, what: "encrypted result"))
        print("class \(plan.classify(scores: scores)); scores \(scores)")
    }
}

/// A progress bar on standard error fed by polled job states: redrawn in place on a terminal
/// when its text changes, one line per tenth otherwise (logs stay short).
final class JobProgressBar: @unchecked Sendable {
    private let label: String
    private let lock = NSLock()
    private let interactive = isatty(STDERR_FILENO) != 0
    private var last = ""
    private var lastTenth = -1

    init(label: String) { self.label = label }

    func show(_ job: InferenceJob) {
        lock.withLock {
            let percent = Int(job.progress * 100)
            let width = 30, filled = percent * width / 100
            let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
            let stage = job.status == .running ? (job.stage ?? "starting") : job.status.rawValue
            let text = String(format: "  %@ [%@] %3d%% %@", label, bar, percent, stage)
            guard text != last, interactive || percent / 10 != lastTenth else { return }
            (last, lastTenth) = (text, percent / 10)
            fflush(nil)
            FileHandle.standardError.write(Data((interactive ? "\r\u{1B}[K" + text : text + "\n").utf8))
        }
    }

    func finish() {
        lock.withLock { if interactive && !last.isEmpty { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) } }
    }
}

func readBytes(_ path: String, what: String) throws -> [UInt8] {
    guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("cannot read the \(what) at \(path)") }
    return [UInt8](data)
}

/// Writes a file; with `permissions` (the secret key: 0o600) the file is created by one
/// `open(O_CREAT | O_EXCL)` with those permissions, so it is never readable by others, not even
/// for a moment (Foundation's `createFile` writes a temporary file, renames it, then chmods).
func writeBytes(_ bytes: [UInt8], to path: String, permissions: Int? = nil) throws {
    guard let permissions else { return try Data(bytes).write(to: URL(fileURLWithPath: path), options: .atomic) }
    if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
    let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode_t(permissions))
    guard descriptor >= 0 else { throw ValidationError("cannot create \(path): \(String(cString: strerror(errno)))") }
    defer { close(descriptor) }
    var written = 0
    while written < bytes.count {
        let count = bytes[written...].withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        guard count > 0 else { throw ValidationError("cannot write \(path): \(String(cString: strerror(errno)))") }
        written += count
    }
}

/// A folder only its owner can enter (0700), created if missing; an existing one is narrowed to 0700.
func createPrivateDirectory(_ path: String) throws {
    if !FileManager.default.fileExists(atPath: path) {
        // Through an absolute URL: a bare name ("my-keys") has the working directory as parent.
        let parent = URL(fileURLWithPath: path).deletingLastPathComponent().path
        try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        guard mkdir(path, 0o700) == 0 || errno == EEXIST else {
            throw ValidationError("cannot create \(path): \(String(cString: strerror(errno)))")
        }
    }
    guard chmod(path, 0o700) == 0 else { throw ValidationError("cannot restrict \(path) to its owner") }
}

import ArgumentParser
import Foundation
import NeuralNet
import ObscuraClient
import ObscuraServer
import PrivateInference
import TFHE

struct BenchService: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "service",
        abstract: "Load the HTTP service on loopback: concurrent clients, each with its own keys, submitting jobs; completions, refusals, losses, latency, and the overhead over infer-local.")

    @Option(help: "A model `pbs` mode runs (bundled name or file).") var model = "fast-mnist"
    @Option(help: "Concurrent clients, each with its own secret and evaluation key.") var clients = 4
    @Option(help: "Jobs per client, one after the other.") var jobs = 2
    @Option(help: "The server's queue capacity (jobs beyond it are refused with 503).") var queue = 16
    @Option(help: "A PostgreSQL URL: the server keeps its rows there and `obscura worker` processes run the jobs (see --workers-processes). Default: SQLite and the server's own worker.")
    var database: String?
    @Option(help: "With --database: worker processes started beside the server.") var workersProcesses = 1
    @Flag(help: "Print one JSON object instead of one line per figure.") var json = false

    func validate() throws {
        guard clients >= 1, jobs >= 1, queue >= 1 else { throw ValidationError("--clients, --jobs and --queue must be at least 1") }
        guard workersProcesses >= 1 else { throw ValidationError("--workers-processes must be at least 1") }
        guard database != nil || workersProcesses == 1 else { throw ValidationError("--workers-processes needs --database (worker processes share a PostgreSQL store)") }
        if let database {
            do { _ = try PostgresAddress(url: database) } catch { throw ValidationError(error.description) }
        }
    }

    /// One client's outcome for one job.
    private enum Outcome: Sendable {
        case completed(seconds: Double, exact: Bool)
        case refused
        case lost(String)
    }

    func run() async throws {
        let file = try ModelCatalog.load(model)
        let dataset = try Dataset.bundledSample(file.datasetKind)
        let plan = try InferencePlan.served(model: file)
        var local = try LocalInference(model: file, dataset: dataset, parameters: .fixed(plan.parameters, plan.answer))
        let localSeconds = try (0..<2).map { try local.run(record: $0).seconds }.sorted()[0]

        let (clients, jobs, quiet) = (clients, jobs, json)
        let fleet = try database.map { LoopbackFleet(database: try PostgresAddress(url: $0), databaseURL: $0, processes: workersProcesses, models: [model]) }
        let (singleSeconds, wall, outcomes) = try await withLoopbackServer(
            models: ModelRegistry([try ServedModelEntry(model: file)]), queueCapacity: queue, fleet: fleet) { _, running in
            let service = ServiceClient(baseURL: running.url)

            // One uncontended job: the HTTP path's cost over the same evaluation in process.
            var single = try await PrivateClassifier.connect(to: service, plan: plan, secretKey: SecretKey(parameters: plan.parameters))
            let began = Clock.now()
            _ = try await single.classify(dataset.sample(0))
            let singleSeconds = Double(Clock.now() - began) / 1e9

            let progress = Progress(total: clients * jobs, label: "service jobs", quiet: quiet)
            let start = Clock.now()
            let outcomes = try await withThrowingTaskGroup(of: [Outcome].self) { group in
                for client in 0..<clients {
                    group.addTask {
                        var classifier = try await PrivateClassifier.connect(to: service, plan: plan, secretKey: SecretKey(parameters: plan.parameters))
                        var outcomes: [Outcome] = []
                        for job in 0..<jobs {
                            let record = dataset.sample((client * jobs + job) % dataset.count)
                            let began = Clock.now()
                            do {
                                let prediction = try await classifier.classify(record)
                                outcomes.append(.completed(seconds: Double(Clock.now() - began) / 1e9,
                                                           exact: prediction.scores == plan.referenceScores(record)))
                            } catch ServiceClientError.queueFull {
                                outcomes.append(.refused)
                            } catch {
                                outcomes.append(.lost(String(describing: error)))
                            }
                            progress.advance()
                        }
                        return outcomes
                    }
                }
                return try await group.reduce(into: []) { $0 += $1 }
            }
            let wall = Double(Clock.now() - start) / 1e9
            progress.finish()
            return (singleSeconds, wall, outcomes)
        }

        var latencies: [Double] = [], exact = 0, refused = 0, lost: [String] = []
        for outcome in outcomes {
            switch outcome {
            case .completed(let seconds, let isExact):
                latencies.append(seconds)
                if isExact { exact += 1 }
            case .refused: refused += 1
            case .lost(let why): lost.append(why)
            }
        }
        latencies.sort()
        func percentile(_ p: Double) -> Double { latencies.isEmpty ? 0 : latencies[min(latencies.count - 1, Int(p * Double(latencies.count)))] }
        var report = Report(jsonOnly: json)
        report.add("clients", Double(clients), "")
        report.add("worker_processes", Double(database == nil ? 0 : workersProcesses), "")
        report.add("jobs_submitted", Double(outcomes.count), "")
        report.add("jobs_completed", Double(latencies.count), "")
        report.add("jobs_refused", Double(refused), "")
        report.add("jobs_lost", Double(lost.count), "")
        report.add("exact_match_rate", latencies.isEmpty ? 0 : Double(exact) / Double(latencies.count), "")
        report.add("p50_latency_s", percentile(0.5), "s")
        report.add("p95_latency_s", percentile(0.95), "s")
        report.add("wall_s", wall, "s")
        report.add("throughput_jobs_per_s", Double(latencies.count) / wall, "jobs/s")
        report.add("infer_local_latency_s", localSeconds, "s")
        report.add("single_job_http_latency_s", singleSeconds, "s")
        report.add("http_overhead_ratio", singleSeconds / localSeconds, "")
        report.add("loaded_time_per_job_ratio", latencies.isEmpty ? 0 : wall / Double(latencies.count) / localSeconds, "")
        report.add("bootstraps_per_job", Double(plan.bootstrapsPerInference), "")
        if json { print(report.json()) }
        for why in lost.prefix(3) { FileHandle.standardError.write(Data("lost: \(why)\n".utf8)) }
        guard lost.isEmpty, exact == latencies.count else { throw ValidationError("\(lost.count) job(s) lost, \(latencies.count - exact) inexact") }
    }
}

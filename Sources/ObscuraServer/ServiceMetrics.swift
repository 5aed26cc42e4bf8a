import CoreMetrics
import Metrics
import ObscuraAPI
import Prometheus

/// The server's metrics: recorded through swift-metrics (`Counter`, `Meter`, `Timer`), exposed in
/// Prometheus's text format by swift-prometheus at `GET /metrics`. Each server has its own
/// registry and factory instead of a process-wide `MetricsSystem.bootstrap`, because one process
/// may run several servers (the tests, the service bench) and each must count only its own.
struct ServiceMetrics: Sendable {
    private let registry = PrometheusCollectorRegistry()
    private let factory: PrometheusMetricsFactory

    init() {
        var factory = PrometheusMetricsFactory(registry: registry)
        // Evaluations take from milliseconds (the perceptron) to half a minute (an MNIST CNN).
        factory.durationHistogramBuckets["obscura_evaluation_seconds"] =
            [0.01, 0.1, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300].map { Duration.milliseconds(Int($0 * 1000)) }
        self.factory = factory
    }

    /// A finished job: its outcome, and for a completed one its bootstraps and evaluation time.
    func jobFinished(model: String, succeeded: Bool, bootstraps: Int, seconds: Double) {
        Counter(label: "obscura_jobs_finished_total", dimensions: [("outcome", succeeded ? "done" : "failed")], factory: factory).increment()
        guard succeeded else { return }
        Counter(label: "obscura_bootstraps_total", factory: factory).increment(by: bootstraps)
        Timer(label: "obscura_evaluation_seconds", dimensions: [("model", model)], factory: factory)
            .recordNanoseconds(Int64(seconds * 1e9))
    }

    /// Why a submission was refused before anything was stored.
    enum Refusal: String {
        case queueFull = "queue_full", quota
    }

    /// A submission refused with 503 (the server's queue) or 429 (the owner's quota).
    func submissionRefused(_ reason: Refusal) {
        Counter(label: "obscura_jobs_refused_total", dimensions: [("reason", reason.rawValue)], factory: factory).increment()
    }

    /// An answered request, by route template (not path: ids would make a series per job),
    /// method and status, with its time since `start`.
    func requestAnswered(route: String, method: String, status: Int, since start: ContinuousClock.Instant) {
        Counter(label: "obscura_http_requests_total", dimensions: [("route", route), ("method", method), ("status", String(status))],
                factory: factory).increment()
        Timer(label: "obscura_http_request_duration_seconds", dimensions: [("route", route)], factory: factory)
            .record(duration: ContinuousClock.now - start)
    }

    /// The text exposition, after setting the gauges read at scrape time: the queue's state and
    /// the stored jobs by status (across restarts).
    func exposition(queued: Int, running: Int, capacity: Int, stored: [JobStatus: Int]) -> String {
        for (state, value) in [("queued", queued), ("running", running)] {
            Meter(label: "obscura_jobs", dimensions: [("state", state)], factory: factory).set(value)
        }
        Meter(label: "obscura_queue_capacity", factory: factory).set(capacity)
        for status in JobStatus.allCases {
            Meter(label: "obscura_jobs_stored", dimensions: [("status", status.rawValue)], factory: factory).set(stored[status] ?? 0)
        }
        return registry.emitToString()
    }
}

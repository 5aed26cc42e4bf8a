import Dispatch

import Foundation

/// Wall-clock timing for benchmarks.
enum Clock {
    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// Seconds taken by `body`.
    static func seconds(_ body: () throws -> Void) rethrows -> Double {
        let start = now()
        try body()
        return Double(now() - start) / 1e9
    }

    /// The median of `runs` timings of `body`, in seconds.
    static func median(runs: Int, _ body: () -> Void) -> Double {
        var samples = (0..<runs).map { _ in seconds(body) }
        samples.sort()
        return samples[samples.count / 2]
    }
}

/// Benchmark figures, printed as `name: value unit` lines or as one JSON object.
struct Report {
    private(set) var entries: [(name: String, value: Double, unit: String)] = []
    /// When set, nothing is printed until ``json()``.
    let jsonOnly: Bool

    init(jsonOnly: Bool) { self.jsonOnly = jsonOnly }

    mutating func add(_ name: String, _ value: Double, _ unit: String) {
        entries.append((name, value, unit))
        if !jsonOnly {
            print("\(name): \(Self.format(value)) \(unit)")
            fflush(nil)
        }
    }

    static func format(_ value: Double) -> String {
        if value == value.rounded() && abs(value) < 1e15 { return String(Int64(value)) }
        return String(format: "%.6g", value)
    }

    func json() -> String {
        let body = entries.map { "\"\($0.name)\": \(Self.format($0.value))" }.joined(separator: ", ")
        return "{\(body)}"
    }
}

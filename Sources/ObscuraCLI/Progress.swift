import Dispatch
import Foundation

/// A progress line on standard error for work that takes more than a few seconds; safe to
/// advance from several threads.
final class Progress: @unchecked Sendable {
    private let total: Int
    private let label: String
    private let quiet: Bool
    private var done = 0
    private var lastPrinted = -1
    private let lock = DispatchSemaphore(value: 1)
    private let start = Clock.now()

    init(total: Int, label: String, quiet: Bool = false) {
        self.total = total
        self.label = label
        self.quiet = quiet
    }

    func advance() {
        lock.wait()
        defer { lock.signal() }
        done += 1
        let percent = done * 100 / total
        guard !quiet, percent != lastPrinted else { return }
        lastPrinted = percent
        let elapsed = Double(Clock.now() - start) / 1e9
        let remaining = elapsed / Double(done) * Double(total - done)
        FileHandle.standardError.write(Data(String(format: "\r%@: %d/%d (%d%%), %.0f s left ", label, done, total, percent, remaining).utf8))
    }

    func finish() {
        if !quiet { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}

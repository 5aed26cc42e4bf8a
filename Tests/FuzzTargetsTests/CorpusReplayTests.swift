import Foundation
@testable import FuzzTargets
import Testing

/// The committed fuzz corpus (`Fuzz/corpus/<target>/`: the seeds, what libFuzzer added while
/// fuzzing, and every input that once crashed a reader) replayed through each target, so that a
/// fixed crash stays fixed without a fuzzing build.
struct CorpusReplayTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fuzz/corpus")

    @Test("every committed corpus input runs through its reader without a crash", arguments: FuzzTarget.allCases)
    func replay(target: FuzzTarget) throws {
        let folder = Self.corpus.appendingPathComponent(target.rawValue)
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { !$0.hasPrefix(".") }
        #expect(!files.isEmpty, "no corpus for \(target.rawValue)")
        for file in files {
            target.run([UInt8](try Data(contentsOf: folder.appendingPathComponent(file))))
        }
    }
}

import Foundation
import Testing
@testable import NeuralNet

/// The real datasets sit beside the repository in `../shared/data` (CI has them there too);
/// `OBSCURA_SHARED_DATA` points elsewhere.
enum SharedData {
    static let root: String = {
        if let path = ProcessInfo.processInfo.environment["OBSCURA_SHARED_DATA"] { return path }
        let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        return here.appendingPathComponent("../../../shared/data").standardized.path
    }()
}

/// Writes a hand-made file, failing the test if it cannot.
func writeFixture(_ path: String, _ data: Data) throws {
    try data.write(to: URL(fileURLWithPath: path))
}

/// Expects `gradient[i]` to match the central difference of `loss` at `parameters` (step 0.01)
/// within `tolerance` relative to max(1, |difference|), for every i in `indices`.
func expectFiniteDifferences(_ gradient: [Float], at parameters: [Float], indices: [Int], tolerance: Float,
                             sourceLocation: SourceLocation = #_sourceLocation, loss: ([Float]) -> Float) {
    for i in indices {
        var plus = parameters, minus = parameters
        plus[i] += 1e-2
        minus[i] -= 1e-2
        let numeric = (loss(plus) - loss(minus)) / 2e-2
        #expect(abs(numeric - gradient[i]) < tolerance * max(1, abs(numeric)), "parameter \(i): \(numeric) vs \(gradient[i])",
                sourceLocation: sourceLocation)
    }
}

/// A scratch folder for hand-made bad files.
func scratchFolder() -> String {
    let path = NSTemporaryDirectory() + "obscura-dataset-tests-\(UUID().uuidString)"
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

struct DatasetTests {
    @Test("the real MNIST test set: 10,000 images of 28×28, known first labels, pixels in [0, 1]")
    func mnist() throws {
        let data = try Dataset.mnist(folder: SharedData.root + "/mnist")
        #expect(data.count == 10_000)
        #expect(data.sampleShape == [1, 28, 28])
        #expect(Array(data.labels.prefix(10)) == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9])
        #expect(data.features.allSatisfy { $0 >= 0 && $0 <= 1 })
        #expect(data.subset(Dataset.mnistEvaluationRange).count == 2000)
    }

    @Test("the real breast-cancer records and the fixed 454/115 split")
    func breastCancer() throws {
        let data = try Dataset.breastCancer(folder: SharedData.root + "/breast-cancer")
        #expect(data.count == 569)
        #expect(data.sampleShape == [30])
        #expect(data.classNames == ["malignant", "benign"])
        #expect(data.labels.filter { $0 == 1 }.count == 357)
        #expect(data.features[0] == 17.99)
        let split = Dataset.breastCancerSplit()
        #expect(split.test.count == 115 && split.train.count == 454)
        #expect(Set(split.train).isDisjoint(with: split.test))
        #expect(split == Dataset.breastCancerSplit())
    }

    @Test("bad IDX files give typed errors naming the file")
    func badIDX() throws {
        let folder = scratchFolder()
        let good: [UInt8] = [0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1]
        let cases: [([UInt8], DatasetError)] = [
            ([0, 0], .badIDXHeader(path: folder + "/f", reason: "shorter than the 4-byte magic")),
            ([1, 0, 8, 1, 0, 0, 0, 1, 0], .badIDXHeader(path: folder + "/f", reason: "magic does not start with two zero bytes")),
            ([0, 0, 9, 1, 0, 0, 0, 1, 0], .badIDXHeader(path: folder + "/f", reason: "element type 9 is not unsigned byte (8)")),
            ([0, 0, 8, 3, 0, 0, 0, 1, 0], .badIDXHeader(path: folder + "/f", reason: "3 dimensions, expected 1")),
            (Array(good.dropLast()), .truncated(path: folder + "/f", expected: 3, found: 2)),
            ([0x1f, 0x8b, 1, 2, 3], .corruptGzip(path: folder + "/f")),
        ]
        for (bytes, expected) in cases {
            try writeFixture(folder + "/f", Data(bytes))
            #expect(throws: expected) { _ = try IDXReader.labels(at: folder + "/f") }
        }
        try writeFixture(folder + "/f", Data(good))
        #expect(try IDXReader.labels(at: folder + "/f") == [7, 2, 1])
        #expect(throws: DatasetError.unreadable(path: folder + "/missing")) { _ = try IDXReader.labels(at: folder + "/missing") }
    }

    @Test("bad CSV files give typed errors with the line number")
    func badCSV() throws {
        let folder = scratchFolder()
        let cases: [(String, DatasetError)] = [
            ("2,2,a,b\n1,2,0\n", .badCSV(path: folder + "/wdbc.csv", line: 2, reason: "1 records, header says 2")),
            ("x,2,a,b\n", .badCSV(path: folder + "/wdbc.csv", line: 1, reason: "header is not 'samples,features,class names...'")),
            ("1,2,a,b\n1,2\n", .badCSV(path: folder + "/wdbc.csv", line: 2, reason: "2 fields, expected 3")),
            ("1,2,a,b\n1,z,0\n", .badCSV(path: folder + "/wdbc.csv", line: 2, reason: "'z' is not a number")),
            ("1,2,a,b\n1,2,5\n", .badCSV(path: folder + "/wdbc.csv", line: 2, reason: "label '5' is not a class index")),
        ]
        for (text, expected) in cases {
            try writeFixture(folder + "/wdbc.csv", Data(text.utf8))
            #expect(throws: expected) { _ = try Dataset.breastCancer(folder: folder) }
        }
    }
}

struct ModelFileVersionTests {
    @Test("A model file newer than this build names the version this build reads")
    func tooNewVersion() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("obscura-too-new-\(UInt64.random(in: 0...UInt64.max)).json").path
        try Data(#"{"formatVersion": 99}"#.utf8).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(throws: ModelError.unsupportedVersion(path: path, version: 99)) { try ModelFile.load(path: path) }
        #expect(ModelError.unsupportedVersion(path: path, version: 99).description.hasSuffix("reads (\(ModelFile.currentVersion))"))
    }
}

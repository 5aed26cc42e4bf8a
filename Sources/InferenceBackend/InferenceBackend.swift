import Dispatch

/// Progress of a server's evaluation: the stage's name, its units done, its units in all.
public typealias EvaluationProgress = @Sendable (_ stage: String, _ done: Int, _ total: Int) -> Void

/// The client half of an encrypted-inference backend (TFHE `pbs`, RLWE BFV/CKKS): it holds the
/// secret key, which never leaves it, and is the only party that sees records or scores.
/// Everything it hands the server is bytes that carry their parameter set.
public protocol InferenceBackendClient: Sendable {
    /// The most records one upload carries (1 for TFHE; the batch size on RLWE).
    var recordsPerUpload: Int { get }
    /// The evaluation key as the server registers it; empty when the plan needs none.
    func evaluationKeyBytes() -> [UInt8]
    /// Records (their raw values) encoded and encrypted as one upload.
    mutating func encryptForUpload(_ records: [ArraySlice<Float>]) throws -> [UInt8]
    /// The scores of the `records` records of an upload, from the server's answer.
    func decryptScores(download: [UInt8], records: Int) throws -> [[Int128]]
}

/// The server half: built from a plan and the client's evaluation key only (there is no way to
/// hand it a secret key); it reads an upload as untrusted bytes and answers in bytes.
public protocol InferenceBackendServer: Sendable {
    /// Progress units of one evaluation (bootstraps on TFHE; steps over primes on RLWE).
    var progressUnits: Int { get }
    /// The answer to one upload.
    func answer(upload: [UInt8], progress: @escaping EvaluationProgress) throws -> [UInt8]
}

/// The one pipeline every caller runs — the job runner (the server's half), the client
/// library, the command line and the tests: encrypt → bytes → evaluate → bytes → decrypt.
public enum EncryptedInference {
    /// What a round trip cost and gave.
    public struct RoundTrip: Sendable {
        /// Each record's decrypted scores.
        public let scores: [[Int128]]
        /// Bytes up and down, over all uploads.
        public let uploadBytes, downloadBytes: Int
        /// Seconds on each side, over all uploads.
        public let clientSeconds, serverSeconds: Double
    }

    /// Runs `records` through `server` as a client and a server on two machines would, in
    /// uploads of ``InferenceBackendClient/recordsPerUpload`` records.
    public static func roundTrip<Client: InferenceBackendClient>(_ records: [ArraySlice<Float>], client: inout Client,
                                                                 server: some InferenceBackendServer,
                                                                 progress: @escaping EvaluationProgress = { _, _, _ in }) throws -> RoundTrip {
        var scores: [[Int128]] = [], up = 0, down = 0, clientSeconds = 0.0, serverSeconds = 0.0
        var clock = DispatchTime.now().uptimeNanoseconds
        func lap() -> Double {
            let now = DispatchTime.now().uptimeNanoseconds
            defer { clock = now }
            return Double(now - clock) / 1e9
        }
        let perUpload = max(1, client.recordsPerUpload)
        for start in stride(from: 0, to: records.count, by: perUpload) {
            let batch = Array(records[start..<min(start + perUpload, records.count)])
            _ = lap()
            let upload = try client.encryptForUpload(batch)
            clientSeconds += lap()
            let download = try server.answer(upload: upload, progress: progress)
            serverSeconds += lap()
            scores += try client.decryptScores(download: download, records: batch.count)
            clientSeconds += lap()
            up += upload.count
            down += download.count
        }
        return RoundTrip(scores: scores, uploadBytes: up, downloadBytes: down, clientSeconds: clientSeconds, serverSeconds: serverSeconds)
    }
}

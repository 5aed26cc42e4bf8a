import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import InferenceBackend
import ObscuraAPI
import RLWE
import SIMDInference
import TFHE

/// Why a call to an Obscura server did not give what was asked.
public enum ServiceClientError: Error, Sendable, CustomStringConvertible {
    /// The server refused the request (4xx or 5xx) and said why.
    case refused(status: Int, APIErrorBody)
    /// The server's queue is full; retry after the given seconds.
    case queueFull(retryAfter: Int, APIErrorBody)
    /// A quota of this client's token is used up (429); retry after the given seconds when the
    /// server gave them (waiting frees a slot or an hour's submissions, not stored key bytes).
    case quotaExceeded(retryAfter: Int?, APIErrorBody)
    /// The job failed on the server.
    case jobFailed(id: String, message: String)
    /// The answer was not what the API promises.
    case unexpectedResponse(String)
    /// Bytes that are not the object the route takes (a secret key above all) were kept on
    /// the device: nothing was sent.
    case notSent(String)

    public var description: String {
        switch self {
        case .refused(let status, let body): "server answered \(status) \(body.error): \(body.message)"
        case .queueFull(let seconds, let body): "server busy (\(body.message)); retry after \(seconds) s"
        case .quotaExceeded(let seconds, let body): "quota exceeded: \(body.message)" + (seconds.map { " (retry after \($0) s)" } ?? "")
        case .jobFailed(let id, let message): "inference \(id) failed on the server: \(message)"
        case .unexpectedResponse(let what): "unexpected answer from the server: \(what)"
        case .notSent(let why): "not sent: \(why)"
        }
    }
}

/// The HTTP side of a client: one method per route of API version 1, async, on `URLSession` so
/// that it runs in an iOS or macOS app as well as on Linux. It moves bytes and JSON only; the
/// cryptography (keys, encryption, decryption) is `PrivateClassifier`'s, on the client's device.
public struct ServiceClient: Sendable {
    /// The server's root, e.g. http://127.0.0.1:8080.
    public let baseURL: URL
    /// The API token sent as `Authorization: Bearer` (nil for a server run with `--no-auth`).
    public let token: String?
    private let session: URLSession

    public init(baseURL: URL, token: String? = nil, session: URLSession = .shared) {
        self.baseURL = baseURL
        self.token = token
        self.session = session
    }

    /// `GET /healthz`.
    public func health() async throws -> HealthReport {
        try decode(try await send("GET", "/healthz"))
    }

    /// `GET /v1/models`.
    public func models() async throws -> [ServedModel] {
        try decode(try await send("GET", "/v1/models"), as: ModelList.self).models
    }

    /// `POST /v1/keys[?model=NAME]`: registers a serialized evaluation key — a TFHE key, or an
    /// RLWE model's ``SIMDClient/evaluationKeyBytes()`` (which need `model`) — never a secret
    /// key (the server refuses one) and returns its id.
    public func registerKey(_ bytes: [UInt8], forModel model: String? = nil) async throws -> RegisteredKey {
        try Self.checkUpload(bytes, is: .evaluationKey)
        return try decode(try await send("POST", "/v1/keys", query: model.map { ["model": $0] } ?? [:], body: bytes))
    }

    /// `POST /v1/models/{name}/inferences?key=ID`: submits an encrypted input; the job runs in
    /// the background.
    public func submit(model: String, keyID: String?, input: [UInt8]) async throws -> InferenceJob {
        try Self.checkUpload(input, is: .encryptedInput)
        return try decode(try await send("POST", "/v1/models/\(model)/inferences", query: keyID.map { ["key": $0] } ?? [:], body: input))
    }

    /// What a route takes.
    enum Upload {
        case evaluationKey, encryptedInput
    }

    /// Refuses, before anything leaves the device, bytes that are not the object a route takes
    /// (TFHE's or RLWE's): a secret key (its own magic) above all, but also any other file given
    /// by mistake, or a truncated or damaged one. A TFHE key or input is parsed whole; an RLWE
    /// upload's framing is walked (its objects are read for a plan, which the server has). The
    /// server checks everything again; this check keeps a secret, and a doomed upload, off the wire.
    static func checkUpload(_ bytes: [UInt8], is upload: Upload) throws(ServiceClientError) {
        if bytes.starts(with: ObscuraFormat.secretMagic) || bytes.starts(with: RlweFormat.secretMagic) || SIMDWire.containsSecretKey(bytes) {
            throw .notSent("these bytes are a secret key, which never leaves the client")
        }
        if let kind = SIMDWire.kind(of: bytes) {
            let expected: SIMDWire.Kind = upload == .evaluationKey ? .evaluationKeys : .inputs
            guard kind == expected else { throw .notSent("these bytes are \(kind), not \(expected)") }
            guard SIMDWire.isWellFramed(bytes) else { throw .notSent("these \(kind) are truncated or damaged: their framing does not account for their bytes") }
            return
        }
        let kind: ObscuraFormat.Kind = upload == .evaluationKey ? .compressedEvaluationKey : .seededLweCiphertextList
        let kinds: [ObscuraFormat.Kind] = upload == .evaluationKey ? [kind] : [kind, .smallKeySeededLweCiphertextList]
        guard bytes.count >= ObscuraFormat.headerSize, bytes.starts(with: ObscuraFormat.publicMagic),
              kinds.map(\.rawValue).contains(UInt16(bytes[6]) | UInt16(bytes[7]) << 8) else {
            throw .notSent("these bytes are not a serialized \(kind) (object kind \(kind.rawValue)) or an RLWE model's \(upload == .evaluationKey ? "keys" : "inputs")")
        }
        do {
            switch upload {
            case .evaluationKey: _ = try CompressedEvaluationKey(deserializing: bytes)
            case .encryptedInput: _ = try [SeededLweCiphertext](deserializing: bytes)
            }
        } catch {
            throw .notSent("these bytes do not read as a \(kind): \(error)")
        }
    }

    /// `GET /v1/inferences/{id}`.
    public func job(_ id: String) async throws -> InferenceJob {
        try decode(try await send("GET", "/v1/inferences/\(id)"))
    }

    /// `GET /v1/inferences/{id}/result`: the encrypted scores of a finished job.
    public func result(_ id: String) async throws -> [UInt8] {
        [UInt8](try await send("GET", "/v1/inferences/\(id)/result").0)
    }

    /// `DELETE /v1/inferences/{id}`: the server forgets a finished job, its encrypted input and result.
    public func deleteJob(_ id: String) async throws {
        _ = try await send("DELETE", "/v1/inferences/\(id)")
    }

    /// `DELETE /v1/keys/{id}`: the server forgets an evaluation key that no unfinished job needs.
    public func deleteKey(_ id: String) async throws {
        _ = try await send("DELETE", "/v1/keys/\(id)")
    }

    /// Polls the job until it is done (reporting each status seen) and downloads its result.
    /// Polling starts at 2 ms and doubles up to `maxPollInterval`, so a job of a millisecond is
    /// not kept waiting and a job of a minute is not polled hundreds of times.
    public func waitForResult(_ id: String, maxPollInterval: Duration = .milliseconds(250),
                              progress: @Sendable (InferenceJob) -> Void = { _ in }) async throws -> [UInt8] {
        var interval = Duration.milliseconds(2)
        while true {
            let job = try await job(id)
            progress(job)
            switch job.status {
            case .done: return try await result(id)
            case .failed: throw ServiceClientError.jobFailed(id: id, message: job.error ?? "unknown error")
            case .queued, .running:
                try await Task.sleep(for: interval)
                interval = min(interval * 2, maxPollInterval)
            }
        }
    }

    /// Sends a request; a 4xx or 5xx answer becomes a `ServiceClientError` carrying the server's
    /// JSON error.
    func send(_ method: String, _ path: String, query: [String: String] = [:], body: [UInt8]? = nil)
        async throws -> (Data, HTTPURLResponse) {
        guard var components = URLComponents(url: baseURL.appendingPathComponent(path), resolvingAgainstBaseURL: false) else {
            throw ServiceClientError.unexpectedResponse("bad URL \(baseURL)\(path)")
        }
        if !query.isEmpty { components.queryItems = query.sorted { $0.key < $1.key }.map { URLQueryItem(name: $0.key, value: $0.value) } }
        guard let url = components.url else { throw ServiceClientError.unexpectedResponse("bad URL \(components)") }
        var request = URLRequest(url: url)
        request.httpMethod = method
        request.timeoutInterval = 600
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        if let body {
            request.setValue(ObscuraAPI.binaryContentType, forHTTPHeaderField: "Content-Type")
            request.httpBody = Data(body)
        }
        let (data, response) = try await session.data(for: request)
        guard let http = response as? HTTPURLResponse else { throw ServiceClientError.unexpectedResponse("not an HTTP response") }
        guard (200..<300).contains(http.statusCode) else {
            let error = (try? JSONDecoder().decode(APIErrorBody.self, from: data))
                ?? APIErrorBody(error: "http_\(http.statusCode)", message: String(decoding: data.prefix(200), as: UTF8.self))
            let retryAfter = http.value(forHTTPHeaderField: "Retry-After").flatMap(Int.init)
            if http.statusCode == 503 { throw ServiceClientError.queueFull(retryAfter: retryAfter ?? 1, error) }
            if http.statusCode == 429 { throw ServiceClientError.quotaExceeded(retryAfter: retryAfter, error) }
            throw ServiceClientError.refused(status: http.statusCode, error)
        }
        return (data, http)
    }

    private func decode<T: Decodable>(_ answer: (Data, HTTPURLResponse), as type: T.Type = T.self) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: answer.0)
        } catch {
            throw ServiceClientError.unexpectedResponse("\(T.self) expected: \(error)")
        }
    }
}

/// The service's half of the one pipeline (``EncryptedInference``), for any backend's client:
/// what ``PrivateClassifier`` and ``PrivateBatchClassifier`` both run.
extension ServiceClient {
    /// One upload's scores through the service, and what it cost.
    struct ServedRoundTrip {
        let scores: [[Int128]]
        let jobID: String
        let uploadBytes, downloadBytes: Int
    }

    /// Registers `client`'s evaluation key for `model`; nil (and nothing sent) when the plan needs none.
    func registerKey(of client: some InferenceBackendClient, forModel model: String) async throws -> String? {
        let bytes = client.evaluationKeyBytes()
        return bytes.isEmpty ? nil : try await registerKey(bytes, forModel: model).id
    }

    /// Encrypts `records` on this device, submits them as one job, waits (reporting progress),
    /// downloads and decrypts.
    func roundTrip<Client: InferenceBackendClient>(_ records: [ArraySlice<Float>], client: inout Client, model: String, keyID: String?,
                                                   progress: @Sendable (InferenceJob) -> Void) async throws -> ServedRoundTrip {
        let input = try client.encryptForUpload(records)
        let job = try await submit(model: model, keyID: keyID, input: input)
        let result = try await waitForResult(job.id, progress: progress)
        return ServedRoundTrip(scores: try client.decryptScores(download: result, records: records.count), jobID: job.id,
                               uploadBytes: input.count, downloadBytes: result.count)
    }
}

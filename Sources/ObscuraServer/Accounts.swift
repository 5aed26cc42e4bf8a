import Crypto
import Foundation
import Hummingbird
import HummingbirdAuth

/// Whose keys, jobs and results a request may see. Every stored key and job belongs to exactly
/// one owner; another owner's are answered as if they did not exist (404).
public struct Owner: Sendable, Hashable, CustomStringConvertible {
    /// The owning token's public id; empty for the one anonymous owner of an open server.
    public let id: String

    /// The owner that a token with this public id stands for.
    public init(id: String) { self.id = id }

    /// The owner of everything on a server started with ``ServerConfiguration/Access/open``.
    public static let anonymous = Owner(id: "")

    public var description: String { id.isEmpty ? "anonymous" : "token \(id)" }
}

/// An API token as the store lists it. The token itself is shown once, when it is created; the
/// store keeps only its SHA-256, so a copy of the database grants nothing.
public struct APIToken: Sendable, Equatable, Codable {
    /// The public id: the first 16 hex digits of the token's SHA-256. Names the token's owner.
    public var id: String
    /// The operator's label (who it was made for).
    public var name: String
    public var createdAt: Double
    /// When it was revoked; a revoked token is refused (401) from then on.
    public var revokedAt: Double?

    /// A new random token's text and its record: "obscura_" and 64 hex digits (256 bits from the
    /// system's CSPRNG).
    static func generate(name: String, now: Double) -> (token: String, record: APIToken) {
        var random = SystemRandomNumberGenerator()
        let token = "obscura_" + (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &random) }.hex
        return (token, APIToken(id: String(digest(of: token).prefix(16)), name: name, createdAt: now, revokedAt: nil))
    }

    /// The hex SHA-256 of a token's text: what the store keeps and looks tokens up by.
    static func digest(of token: String) -> String {
        SHA256.hash(data: Array(token.utf8)).hex
    }
}

extension Sequence<UInt8> {
    /// Lowercase hex, two digits a byte: tokens, their digests and key ids.
    var hex: String { map { String(format: "%02x", $0) }.joined() }
}

/// How much each owner may hold and submit. A request beyond a quota gets 429 (with
/// `Retry-After` where waiting helps) and changes nothing stored.
public struct Quotas: Sendable, Equatable {
    /// Bytes of evaluation keys stored at once (a key counts until it is deleted).
    public var storedKeyBytes: Int
    /// Jobs queued or running at once.
    public var unfinishedJobs: Int
    /// Jobs submitted in any sliding hour (deleting jobs does not give submissions back).
    public var jobsPerHour: Int

    public init(storedKeyBytes: Int, unfinishedJobs: Int, jobsPerHour: Int) {
        self.storedKeyBytes = storedKeyBytes
        self.unfinishedJobs = unfinishedJobs
        self.jobsPerHour = jobsPerHour
    }

    /// The default: room for a few keys of the largest set (int6-128's is about 282 MB), a
    /// handful of jobs in flight, and far more jobs an hour than two cores evaluate.
    public static let standard = Quotas(storedKeyBytes: 2 << 30, unfinishedJobs: 8, jobsPerHour: 1_000)

    /// No limit but the server's own (the service bench, which measures the queue's refusals).
    public static let unlimited = Quotas(storedKeyBytes: .max, unfinishedJobs: .max, jobsPerHour: .max)
}

/// The request context of every route: Hummingbird's, with the owner the authenticator found.
typealias ObscuraRequestContext = BasicAuthRequestContext<Owner>

/// Finds a request's owner. With tokens, the `Authorization: Bearer` token's owner if the token
/// is known and not revoked (else none, and the protected routes answer 401); on an open server,
/// the anonymous owner for every request.
struct OwnerAuthenticator: AuthenticatorMiddleware {
    typealias Context = ObscuraRequestContext
    let access: ServerConfiguration.Access
    let store: ServiceStore

    func authenticate(request: Request, context: Context) async throws -> Owner? {
        switch access {
        case .open: return .anonymous
        case .tokens:
            guard let bearer = request.headers.bearer else { return nil }
            return try await store.owner(forToken: bearer.token)
        }
    }
}

extension ObscuraRequestContext {
    /// The request's owner, or 401 naming how to authenticate.
    func owner() throws(APIError) -> Owner {
        guard let identity else { throw .unauthorized }
        return identity
    }
}

import Foundation
import Hummingbird
import ObscuraAPI

/// A refused request: an HTTP status, a stable code and a message naming what was wrong. Every
/// 4xx and 5xx answer carries one as JSON (`APIErrorBody`).
struct APIError: Error, Sendable {
    let status: HTTPResponse.Status
    let code: String
    let message: String
    /// Seconds a client should wait before retrying (503, and 429 where waiting helps).
    var retryAfter: Int?

    static func badRequest(_ code: String, _ message: String) -> APIError { APIError(status: .badRequest, code: code, message: message) }
    static func notFound(_ code: String, _ message: String) -> APIError { APIError(status: .notFound, code: code, message: message) }
    static func conflict(_ code: String, _ message: String) -> APIError { APIError(status: .conflict, code: code, message: message) }

    /// Every slot of the bounded queue is taken.
    static func queueFull(capacity: Int, retryAfter: Int) -> APIError {
        APIError(status: .serviceUnavailable, code: "queue_full",
                 message: "the server's \(capacity) job slots are taken; retry after \(retryAfter) s", retryAfter: retryAfter)
    }

    /// The code of a refusal for want of an upload slot (``UploadSlots``).
    static let uploadsBusy = "uploads_busy"

    /// A body over its route's size limit (declared or received).
    static func bodyTooLarge(limit: Int) -> APIError {
        APIError(status: .contentTooLarge, code: "body_too_large", message: "the request body exceeds this route's limit of \(limit) bytes")
    }

    /// A body still arriving when its time was up.
    static let uploadTooSlow = APIError(status: .requestTimeout, code: "upload_too_slow",
                                        message: "the request body did not arrive within the server's upload time limit")

    /// No valid API token: the request did not say who it is for.
    static let unauthorized = APIError(status: .unauthorized, code: "unauthorized",
                                       message: "this route needs an API token: send Authorization: Bearer TOKEN (`obscura admin create-token` makes one)")

    /// An owner's quota is used up; `retryAfter` when waiting frees it.
    static func quotaExceeded(_ message: String, retryAfter: Int?) -> APIError {
        APIError(status: .tooManyRequests, code: "quota_exceeded", message: message, retryAfter: retryAfter)
    }

    /// The JSON answer.
    func response() -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let retryAfter { headers[.retryAfter] = String(retryAfter) }
        if status == .unauthorized { headers[.wwwAuthenticate] = "Bearer realm=\"obscura\"" }
        // The rest of a body refused before or while it arrived is not read: the connection
        // closes (CloseAfterRefusalHandler) instead of draining it.
        if status == .contentTooLarge || status == .requestTimeout || status == .unauthorized || code == Self.uploadsBusy {
            headers[.connection] = "close"
        }
        let body = (try? JSONEncoder().encode(APIErrorBody(error: code, message: message))) ?? Data()
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
    }
}

/// Turns every error a route throws into a JSON `APIErrorBody`: ours as they are, Hummingbird's
/// own (413 for an oversized body, 404 for an unknown route, which becomes 405 with `Allow` when
/// the path exists under other methods) with a code derived from the status, anything else as a
/// 500 that names no internals.
struct JSONErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    /// The API's routes: method and path template ("{name}" matches one path segment).
    let routes: [(method: HTTPRequest.Method, template: String)]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            return error.response()
        } catch let error as any HTTPResponseError where error.status == .notFound && !allowedMethods(request.uri.path).isEmpty {
            var response = APIError(status: .methodNotAllowed, code: "method_not_allowed",
                                    message: "\(request.method) is not allowed on \(request.uri.path)").response()
            response.headers[.allow] = allowedMethods(request.uri.path).map(\.rawValue).joined(separator: ", ")
            return response
        } catch let error as any HTTPResponseError {
            let code = error.status == .contentTooLarge ? "body_too_large" : error.status.reasonPhrase.lowercased().replacingOccurrences(of: " ", with: "_")
            let message = error.status == .contentTooLarge ? "the request body exceeds this route's size limit" : error.status.reasonPhrase
            return APIError(status: error.status, code: code, message: message).response()
        } catch {
            context.logger.error("internal error: \(error)")
            return APIError(status: .internalServerError, code: "internal", message: "internal server error").response()
        }
    }
}

extension JSONErrorMiddleware {
    /// The methods the API has for `path`.
    func allowedMethods(_ path: String) -> [HTTPRequest.Method] {
        let segments = path.split(separator: "/")
        return routes.filter { route in
            let pattern = route.template.split(separator: "/")
            return pattern.count == segments.count && zip(pattern, segments).allSatisfy { $0.hasPrefix("{") || $0 == $1 }
        }.map(\.method)
    }
}

import Foundation
import Hummingbird
import ObscuraAPI

/// A refused request: an HTTP status, a stable code and a message naming what was wrong. Every
/// 4xx and 5xx answer carries one as JSON (`APIErrorBody`).
struct APIError: Error, Sendable {
    let status: HTTPResponse.Status
    let code: String
    let message: String
    /// Seconds a client should wait before retrying (503 only).
    var retryAfter: Int?

    static func badRequest(_ code: String, _ message: String) -> APIError { APIError(status: .badRequest, code: code, message: message) }
    static func notFound(_ code: String, _ message: String) -> APIError { APIError(status: .notFound, code: code, message: message) }
    static func conflict(_ code: String, _ message: String) -> APIError { APIError(status: .conflict, code: code, message: message) }

    /// Every slot of the bounded queue is taken.
    static func queueFull(capacity: Int, retryAfter: Int) -> APIError {
        APIError(status: .serviceUnavailable, code: "queue_full",
                 message: "the server's \(capacity) job slots are taken; retry after \(retryAfter) s", retryAfter: retryAfter)
    }

    /// The JSON answer.
    func response() -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let retryAfter { headers[.retryAfter] = String(retryAfter) }
        let body = (try? JSONEncoder().encode(APIErrorBody(error: code, message: message))) ?? Data()
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
    }
}

/// Turns every error a route throws into a JSON `APIErrorBody`: ours as they are, Hummingbird's
/// own (413 for an oversized body, 404 for an unknown route) with a code derived from the status,
/// anything else as a 500 that names no internals.
struct JSONErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            return error.response()
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

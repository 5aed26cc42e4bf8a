import NIOCore
import NIOHTTPTypes

/// Closes a connection once a response marked `Connection: close` has been written. The server
/// marks its refusals of an upload so (413 over the size limit, 408 past the upload time):
/// otherwise Hummingbird would keep the connection and read, then drop, the rest of a body the
/// client may go on sending for as long as it likes.
final class CloseAfterRefusalHandler: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private var closeAfterResponse = false

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head):
            closeAfterResponse = head.headerFields[.connection] == "close"
        case .end where closeAfterResponse:
            let channel = context.channel
            let written = promise ?? context.eventLoop.makePromise()
            written.futureResult.whenComplete { _ in channel.close(promise: nil) }
            context.write(data, promise: written)
            return
        default:
            break
        }
        context.write(data, promise: promise)
    }
}

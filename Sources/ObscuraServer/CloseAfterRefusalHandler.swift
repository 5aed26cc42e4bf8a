import NIOCore
import NIOHTTPTypes

/// Closes a connection once a response marked `Connection: close` has been written. The server
/// marks its refusals of an upload so (413 over the size limit, 408 past the upload time, 401,
/// no upload slot): otherwise Hummingbird would keep the connection and read, then drop, the
/// rest of a body the client may go on sending for as long as it likes.
///
/// The close lingers: the output is shut first (the client reads the answer, then end of
/// stream) and the connection closed `linger` later. Closing at once while the client's unread
/// body sits in the server's socket would make the kernel reset the connection, and a reset
/// can destroy the answer before the client has read it.
final class CloseAfterRefusalHandler: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private var closeAfterResponse = false
    private let linger: TimeAmount

    init(linger: TimeAmount = .seconds(2)) {
        self.linger = linger
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head):
            closeAfterResponse = head.headerFields[.connection] == "close"
        case .end where closeAfterResponse:
            let (channel, linger) = (context.channel, linger)
            let written = promise ?? context.eventLoop.makePromise()
            written.futureResult.whenComplete { _ in
                channel.close(mode: .output, promise: nil)
                channel.eventLoop.scheduleTask(in: linger) { channel.close(promise: nil) }
            }
            context.write(data, promise: written)
            return
        default:
            break
        }
        context.write(data, promise: promise)
    }
}

// SPDX-License-Identifier: Apache-2.0
// Closes a connection whose client does not send a whole request within the timeout.

import DSnoTControlProtocol
import NIOCore

/// The request deadline of one control connection: the client has `timeout` to send a complete,
/// non-blank request line, counted from the connection's opening or from the daemon's last answer.
///
/// While requests are unanswered the deadline is off (it is the daemon's turn); when every request has
/// been answered it is armed again, once. Bytes that do not complete a request (a trickle of a line,
/// blank lines) never move it, so a client cannot hold a connection by sending a newline now and then.
/// When it fires, the client gets a `timeout` error line and the connection is closed. Removed when a
/// `watch` stream starts.
final class RequestDeadlineHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let timeout: TimeAmount
    private var deadline: Scheduled<Void>?
    /// Complete non-blank lines received and not yet answered.
    private var unanswered = 0
    /// Whether the line being received has a non-blank byte so far.
    private var lineHasContent = false

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { arm(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        if deadline == nil { arm(context) }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        var completed = 0
        for byte in buffer.readableBytesView {
            if byte == 0x0A {
                if lineHasContent { completed += 1 }
                lineHasContent = false
            } else if !LineFramer.isBlank(byte) {
                lineHasContent = true
            }
        }
        if completed > 0 {
            unanswered += completed
            disarm()
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        // Each response is one write; the last answer hands the turn back to the client.
        unanswered = max(0, unanswered - 1)
        if unanswered == 0 { arm(context) }
        context.write(data, promise: promise)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        disarm()
    }

    func channelInactive(context: ChannelHandlerContext) {
        disarm()
        context.fireChannelInactive()
    }

    private func disarm() {
        deadline?.cancel()
        deadline = nil
    }

    private func arm(_ context: ChannelHandlerContext) {
        disarm()
        let channel = context.channel
        let milliseconds = timeout.nanoseconds / 1_000_000
        let span = milliseconds % 1000 == 0 ? "\(milliseconds / 1000) s" : "\(milliseconds) ms"
        deadline = context.eventLoop.scheduleTask(in: timeout) {
            let error = ControlError(
                code: .timeout,
                message: "no complete request within \(span) of connecting or of the last answer"
            )
            RefusalHandler.answerAndClose(channel, with: error)
        }
    }
}
